package chaos

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"cellagent/agent"
)

// soakChances: an MT every 8 s and an MO every 12 s on average, a fault
// of some kind every minute or two, and no kills.
var soakChances = chance{mt: 1.0 / 32, mo: 1.0 / 48, garbage: 1.0 / 960, broker: 1.0 / 2400, hangup: 1.0 / 2400,
	silence: 1.0 / 2400, cms: 1.0 / 2400, bsc: 1.0 / 1200, coverage: 1.0 / 2400, recover: 1.0 / 2400}

// soakWarmup is left out of the trends: the first minutes fill caches,
// queues and the store's pages.
const soakWarmup = 2 * time.Minute

// sample is one reading of the agent's footprint.
type sample struct {
	at time.Duration
	// anon and file split rss: the Go heap and stacks against pages of
	// mapped files (bbolt maps its store), which the kernel may reclaim.
	rss, anon, file, heap, db float64 // MiB; db: the store file's size
	// rt is what the Go runtime holds from the system, MiB.
	rt                    float64
	goroutines, fds, thrs float64
}

// TestSoak runs one agent for -soak.duration under a steady stream of SMS
// both ways and an occasional fault, samples its resident memory, heap,
// goroutines, open files and threads every -soak.every, and prints the
// series with a least-squares trend per hour. The trend is reported, not
// asserted (a speed or size target is never a unit test's verdict); what
// is asserted is that nothing was lost, as in TestChaos. Only
// scripts/soak runs it.
func TestSoak(t *testing.T) {
	if *flagSoak <= 0 {
		t.Skip("long-running; scripts/soak runs it with -soak.duration")
	}
	d, seed := newDriver(t, "soak", 0x736f616b)
	r, n := d.r, d.n
	began := time.Now()
	series := d.sampled(t, began, *flagSoak, soakChances, func(s sample) {
		t.Logf("%s: RSS %.1f MiB, heap %.1f MiB, %g goroutines; MT %d, MO %d", s.at.Round(time.Second), s.rss, s.heap, s.goroutines, d.mt, d.mo)
	})
	d.f.clear()
	soakTime := time.Since(began)
	o, clean := r.drain(t, true)
	invs, f := r.check(o, clean)
	head := fmt.Sprintf("soak: seed %d, %s under load + %s quiet, one agent (pid kept, no kills)\n%s",
		seed, soakTime.Round(time.Second), (time.Since(began) - soakTime).Round(time.Second), curves(series))
	report(t, head, n, f, invs)
}

// sampled starts the agent and drives it with chances until run has
// passed since began, sampling it every -chaos.every; logf is shown every
// tenth sample.
func (d *driver) sampled(t *testing.T, began time.Time, run time.Duration, p chance, logf func(sample)) []sample {
	d.r.start()
	var series []sample
	next := began.Add(*flagEvery)
	for time.Since(began) < run {
		d.tick()
		d.step(p)
		if now := time.Now(); !now.Before(next) {
			next = next.Add(*flagEvery)
			s, err := d.r.sample(now.Sub(began))
			if err != nil {
				t.Logf("sample at %s: %v", now.Sub(began).Round(time.Second), err)
				continue
			}
			series = append(series, s)
			if len(series)%10 == 0 {
				logf(s)
			}
		}
	}
	return series
}

// sample reads the agent's RSS, open files and threads from /proc and its
// heap and goroutines from status.json (rewritten every 15 s).
func (r *rig) sample(at time.Duration) (sample, error) {
	s := sample{at: at}
	pid := r.pid()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("proc status: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseFloat(f[0], 64)
		switch k {
		case "VmRSS":
			s.rss = n / 1024
		case "RssAnon":
			s.anon = n / 1024
		case "RssFile":
			s.file = n / 1024
		case "Threads":
			s.thrs = n
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, fmt.Errorf("proc fd: %w", err)
	}
	s.fds = float64(len(fds))
	fi, err := os.Stat(filepath.Join(r.dir, "state", agent.StoreFile))
	if err != nil {
		return s, fmt.Errorf("store: %w", err)
	}
	s.db = float64(fi.Size()) / (1 << 20)
	var st agent.Status
	b, err = os.ReadFile(filepath.Join(r.runDir, agent.StatusFile))
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil {
		return s, fmt.Errorf("status file: %w", err)
	}
	s.heap, s.rt, s.goroutines = float64(st.HeapBytes)/(1<<20), float64(st.RuntimeBytes)/(1<<20), float64(st.Goroutines)
	return s, nil
}

// curves prints the series and, per metric, a least-squares slope per
// hour over the samples after the warm-up.
func curves(series []sample) string {
	var b strings.Builder
	b.WriteString("    t  RSS MiB  anon MiB  file MiB  runtime MiB  heap MiB  store MiB  goroutines  fds  threads\n")
	for _, s := range series {
		fmt.Fprintf(&b, "%5s  %7.1f  %8.1f  %8.1f  %11.1f  %8.1f  %9.2f  %10.0f  %3.0f  %7.0f\n",
			fmtMin(s.at), s.rss, s.anon, s.file, s.rt, s.heap, s.db, s.goroutines, s.fds, s.thrs)
	}
	var late []sample
	for _, s := range series {
		if s.at >= soakWarmup {
			late = append(late, s)
		}
	}
	if len(late) < 3 {
		b.WriteString("trend: too few samples after the warm-up\n")
		return b.String()
	}
	metrics := []struct {
		name, unit string
		get        func(sample) float64
	}{
		{"RSS", "MiB", func(s sample) float64 { return s.rss }},
		{"anon", "MiB", func(s sample) float64 { return s.anon }},
		{"file", "MiB", func(s sample) float64 { return s.file }},
		{"runtime", "MiB", func(s sample) float64 { return s.rt }},
		{"heap", "MiB", func(s sample) float64 { return s.heap }},
		{"store", "MiB", func(s sample) float64 { return s.db }},
		{"goroutines", "", func(s sample) float64 { return s.goroutines }},
		{"fds", "", func(s sample) float64 { return s.fds }},
		{"threads", "", func(s sample) float64 { return s.thrs }},
	}
	fmt.Fprintf(&b, "trend per hour (least squares over %d samples from %s):", len(late), fmtMin(soakWarmup))
	for _, m := range metrics {
		x := make([]float64, len(late))
		y := make([]float64, len(late))
		lo, hi := m.get(late[0]), m.get(late[0])
		for i, s := range late {
			x[i], y[i] = s.at.Hours(), m.get(s)
			lo, hi = min(lo, y[i]), max(hi, y[i])
		}
		fmt.Fprintf(&b, " %s %+.2f%s/h (%.1f–%.1f);", m.name, slope(x, y), m.unit, lo, hi)
	}
	b.WriteString("\n")
	return b.String()
}

// slope is the least-squares slope of y over x.
func slope(x, y []float64) float64 {
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx /= float64(len(x))
	my /= float64(len(y))
	var num, den float64
	for i := range x {
		num += (x[i] - mx) * (y[i] - my)
		den += (x[i] - mx) * (x[i] - mx)
	}
	if den == 0 {
		return 0
	}
	return num / den
}

func fmtMin(d time.Duration) string {
	return fmt.Sprintf("%dm%02d", int(d.Minutes()), int(d.Seconds())%60)
}
