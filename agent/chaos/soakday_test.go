package chaos

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"cellagent/agent"
	"cellagent/agent/store"
	"cellagent/modem/clock/clocktest"
)

var (
	flagDay  = flag.Duration("soakday.duration", 0, "run TestSoakDay, a day's traffic accelerated into this much time (scripts/soak-day); 0 skips it")
	flagPlot = flag.String("soakday.out", "", "write TestSoakDay's samples (CSV) and plot (SVG) with this path prefix")
)

// The day TestSoakDay pushes through: two SMS a minute each way, and a
// store that already holds seven days of them (the retention of finished
// records), as a gateway's does from its eighth day on.
const (
	dayRate   = 2 // SMS a minute, each way
	retention = 7 * 24 * time.Hour
)

// TestSoakDay is the accelerated day-long soak: a store seeded with the
// seven days of finished records the default retention keeps, then a
// day's SMS traffic both ways at -soakday.duration's pace against one
// agent (pid kept, no kills), with the soak's occasional faults, sampled
// every -soak.every. The rig's polls already run 30 times (telemetry) and
// 15 times (supervisor) faster than the defaults, so a 40-minute run also
// makes about a day of polls. It prints the series and the trends over
// the whole run and over its second half, writes them as CSV and SVG
// with -soakday.out, and checks that nothing was lost. Only scripts/soak-day
// runs it.
func TestSoakDay(t *testing.T) {
	if *flagDay <= 0 {
		t.Skip("long-running; scripts/soak-day runs it with -soakday.duration")
	}
	speedup := float64(24*time.Hour) / float64(*flagDay)
	perTick := dayRate * speedup * tick.Minutes()
	if perTick > 0.9 {
		t.Fatalf("-soakday.duration %s is too short: %.2f SMS per tick each way", *flagDay, perTick)
	}
	p := soakChances
	p.mt, p.mo = perTick, perTick

	d, seed := newDriver(t, "soakday", 0x64617973)
	r, n := d.r, d.n
	seeded := time.Now()
	mt, mo, err := seedStore(filepath.Join(r.dir, "state", agent.StoreFile), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("store seeded with %d published MT ids and %d finished MO in %s", mt, mo, time.Since(seeded).Round(time.Second))

	began := time.Now()
	series := d.sampled(t, began, *flagDay, p, func(s sample) {
		t.Logf("%s (%.1f h of traffic): RSS %.1f MiB, heap %.1f MiB, store %.2f MiB; MT %d, MO %d",
			fmtMin(s.at), s.at.Hours()*speedup, s.rss, s.heap, s.db, d.mt, d.mo)
	})
	d.f.clear()
	soakTime := time.Since(began)
	o, clean := r.drain(t, true)
	invs, f := r.check(o, clean)
	head := fmt.Sprintf("soak-day: seed %d, %s under a day's traffic (%.0f times fast) + %s quiet, one agent (pid kept, no kills)\n%s%s",
		seed, soakTime.Round(time.Second), speedup, (time.Since(began) - soakTime).Round(time.Second),
		curves(series), lateTrend(series, soakTime/2))
	if *flagPlot != "" {
		if err := writeSamples(*flagPlot, series, speedup); err != nil {
			t.Error(err)
		}
	}
	report(t, head, n, f, invs)
}

// seedStore fills a fresh store with seven days of history at dayRate
// each way, ending at now: published MT ids (the store keeps at most its
// MaxDedupe, the oldest go first) and finished MO messages (at most
// MaxOutbox kept), as the agent's own calls leave them. Their results
// are taken off the journal, as the agent would have published them.
func seedStore(path string, now time.Time) (mt, mo int, err error) {
	clock := clocktest.New(now.Add(-retention), 0)
	st, err := store.Open(path, store.Options{Clock: clock})
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if cerr := st.Close(); err == nil {
			err = cerr
		}
	}()
	every := time.Minute / dayRate
	rec, err := json.Marshal(map[string]any{"id": "", "from": "+491701234501", "text": "meter 42 level low pump open valve status ok alarm high reset", "received": now, "parts": 1})
	if err != nil {
		return 0, 0, err
	}
	// Only the last MaxOutbox (1000) finished MO stay; seeding earlier
	// ones would only be evicted again.
	moFrom := now.Add(-1000 * every)
	for ; clock.Now().Before(now); clock.Advance(every) {
		id := make([]byte, 16)
		_, _ = rand.Read(id)
		if _, err := st.Commit(hex.EncodeToString(id), rec); err != nil {
			return mt, mo, err
		}
		if err := st.MarkPublished(hex.EncodeToString(id)); err != nil {
			return mt, mo, err
		}
		mt++
		if clock.Now().Before(moFrom) {
			continue
		}
		id2 := fmt.Sprintf("seed-mo-%d", mo)
		req, err := json.Marshal(map[string]any{"id": id2, "to": "+491701234567", "text": "seed valve open pump status ok level low"})
		if err != nil {
			return mt, mo, err
		}
		if _, err := st.EnqueueID(id2, req); err != nil {
			return mt, mo, err
		}
		if err := st.MarkSending(id2); err != nil {
			return mt, mo, err
		}
		if err := st.MarkSent(id2, []int{mo % 256}); err != nil {
			return mt, mo, err
		}
		mo++
	}
	for {
		items, err := st.Results().Peek(256)
		if err != nil || len(items) == 0 {
			return mt, mo, err
		}
		if _, err := st.Results().Ack(items[len(items)-1].Seq); err != nil {
			return mt, mo, err
		}
	}
}
