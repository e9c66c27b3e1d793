package bearer

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cellagent/modem/at"
	"cellagent/modem/bg96"
	"cellagent/modem/bg96emu"
	"cellagent/modem/bg96emu/bg96emutest"
)

type events struct {
	mu  sync.Mutex
	all []string
}

func (e *events) add(level, msg string, _ map[string]any) {
	e.mu.Lock()
	e.all = append(e.all, level+": "+msg)
	e.mu.Unlock()
}

func (e *events) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.all, "; ")
}

func (e *events) count(level string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, s := range e.all {
		if strings.HasPrefix(s, level+":") {
			n++
		}
	}
	return n
}

// simModem starts a simulated BG96 with its data port, and an AT session
// on its AT port for +CEER and the profile.
func simModem(t *testing.T) (*bg96emu.Modem, *at.AT) {
	t.Helper()
	m := bg96emutest.Start(t, bg96emu.Config{BootDelay: 300 * time.Millisecond, RegisterDelay: 100 * time.Millisecond})
	if err := m.StartDataPort(); err != nil {
		t.Fatal(err)
	}
	return m, bg96emutest.Engine(t, m)
}

func pppBearer(t *testing.T, m *bg96emu.Modem, a *at.AT, ev *events) *Bearer {
	t.Helper()
	pppd, err := exec.LookPath("pppd")
	if err != nil {
		pppd = "/usr/sbin/pppd"
	}
	return New(Config{
		Mode: ModePPP, Interface: "ppp7",
		PPP:        PPP{PPPD: pppd, Port: m.DataPath(), CID: 1, Unit: 7, ConnectTimeout: 5 * time.Second, RuntimeDir: t.TempDir()},
		BackoffMin: 200 * time.Millisecond, BackoffMax: 2 * time.Second,
		Cause:       func(ctx context.Context) (string, error) { return bg96.New(a).LastFailure(ctx) },
		ConfigFault: bg96.ConfigCause,
		OnEvent:     ev.add,
		Poll:        time.Hour,
	})
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func runBearer(t *testing.T, b *Bearer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = b.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// Real pppd, as far as this kernel allows: the agent dials the
// simulator's data port (ATD*99***1# → CONNECT), starts Debian's pppd on
// the connected line, and pppd exits at once with status 4 because the
// kernel has no PPP (no /dev/ppp; CONFIG_PPP is not set on the CI
// kernels). A full PPP session cannot run here. The agent must report
// the exit clearly, raise one alert and not dial again: no busy loop.
func TestPPPDWithoutKernelSupport(t *testing.T) {
	if _, err := exec.LookPath("pppd"); err != nil {
		t.Skip("pppd not installed (make deps installs Debian's ppp)")
	}
	if _, err := os.Stat("/dev/ppp"); err == nil {
		t.Skip("this kernel has PPP; the test is about one without")
	}
	m, a := simModem(t)
	ev := &events{}
	b := pppBearer(t, m, a, ev)
	start := time.Now()
	runBearer(t, b)
	waitFor(t, "the bearer to block", 10*time.Second, func() bool { return b.Snapshot().State == StateBlocked })
	blockedAfter := time.Since(start)
	s := b.Snapshot()
	if !strings.HasPrefix(s.LastFailure, "pppd exit 4: the kernel lacks PPP support") || !strings.Contains(s.LastFailure, "/dev/ppp") {
		t.Errorf("last failure %q", s.LastFailure)
	}
	// Let the back-off run several of its periods: nothing more happens.
	time.Sleep(2 * time.Second)
	dials, online, _ := m.DataStats()
	s = b.Snapshot()
	t.Logf("pppd exit reported %s after start; simulator dials %d, bearer dials %d, blocked: %s", blockedAfter.Round(time.Millisecond), dials, s.Dials, s.Blocked)
	if dials != 1 || s.Dials != 1 || !online {
		t.Errorf("dials: simulator %d (online %v), bearer %d; want one CONNECT and no redial", dials, online, s.Dials)
	}
	if ev.count("error") != 1 {
		t.Errorf("alerts: %s", ev)
	}
	if got := b.Fault(); !strings.Contains(got, "kernel lacks PPP") {
		t.Errorf("fault %q", got)
	}
	if up, _ := b.Evidence(); up != nil {
		t.Errorf("evidence while blocked by a fault: %v", *up)
	}
	if err := b.Redial("test"); err == nil {
		t.Error("redial while blocked accepted")
	}
}

// A wrong APN: the network refuses the PDP activation, the dial ends in
// NO CARRIER, +CEER names the cause, and the bearer blocks with one
// alert instead of redialling forever.
func TestWrongAPNBlocks(t *testing.T) {
	m, a := simModem(t)
	m.SetAcceptedAPN("internet.m2m")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := bg96.ApplyProfile(ctx, a, bg96.Profile{APN: "wrong.apn"}); err != nil {
		t.Fatal(err)
	}
	// The APN change restarted the radio: let it register again.
	waitFor(t, "registration", 5*time.Second, func() bool { return m.Registered(bg96emu.EPS).Stat == bg96emu.Home })
	ev := &events{}
	b := pppBearer(t, m, a, ev)
	runBearer(t, b)
	waitFor(t, "the bearer to block", 10*time.Second, func() bool { return b.Snapshot().State == StateBlocked })
	time.Sleep(time.Second)
	s := b.Snapshot()
	dials, _, _ := m.DataStats()
	if s.Cause != "Missing or unknown APN" || s.LastFailure != "dial: NO CARRIER" || dials != 1 || ev.count("error") != 1 {
		t.Errorf("snapshot %+v, dials %d, events %s", s, dials, ev)
	}
}

// Without coverage the dial fails with a cause no configuration fixes:
// the bearer redials with a doubling back-off, and dials again at once
// when told to (the supervisor's redial step).
func TestNoCoverageBacksOff(t *testing.T) {
	m, a := simModem(t)
	if err := m.SetRegistration(bg96emu.AllDomains, bg96emu.Registration{Stat: bg96emu.Searching}); err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	b := pppBearer(t, m, a, ev)
	runBearer(t, b)
	waitFor(t, "three dials", 10*time.Second, func() bool { d, _, _ := m.DataStats(); return d >= 3 })
	s := b.Snapshot()
	if s.State != StateBackoff && s.State != StateDialing || s.Cause != "No network service" || b.Fault() != "" {
		t.Errorf("snapshot %+v", s)
	}
	// 0.2 + 0.4 s of back-off lie between three dials; in 1 s more at
	// most two more fit (0.8 s, then 1.6 s).
	time.Sleep(time.Second)
	if d, _, _ := m.DataStats(); d > 5 {
		t.Errorf("%d dials: the back-off does not hold", d)
	}
	if err := b.Redial("test"); err != nil {
		t.Error(err)
	}
}

func TestPPPDArgs(t *testing.T) {
	p := PPP{PPPD: "/usr/sbin/pppd", Unit: 0, Username: "gw", Password: `pa"ss`, RuntimeDir: t.TempDir()}
	file, cleanup, err := p.optionsFile()
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	st, err := os.Stat(file)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("options file %v %v", st, err)
	}
	b, _ := os.ReadFile(file)
	if string(b) != "user \"gw\"\npassword \"pa\\\"ss\"\n" {
		t.Errorf("options file %q", b)
	}
	args := p.Args(file)
	for _, want := range []string{"nodetach", "unit", "local", "noauth", "usepeerdns", "defaultroute", "maxfail"} {
		if !slices.Contains(args, want) {
			t.Errorf("args %v lack %s", args, want)
		}
	}
	if strings.Contains(strings.Join(args, " "), "pa\"ss") {
		t.Error("the password is on pppd's command line")
	}
}
