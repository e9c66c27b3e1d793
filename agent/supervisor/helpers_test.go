package supervisor

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"

	"cellagent/agent/atsession"
	"cellagent/agent/config"
	"cellagent/agent/event"
	"cellagent/agent/lab"
	"cellagent/agent/store"
	"cellagent/modem/bg96emu"
	"cellagent/modem/clock/clocktest"
	"cellagent/modem/power"
	"cellagent/transport/bsc"
	"cellagent/transport/bsc/bscemu"
)

// The daemon's parts fit the supervisor's interfaces.
var _ StateStore = (*store.Store)(nil)

// TestMain lets more scenario tests run at once than the machine has
// cores: each spends most of its wall time waiting for the simulated
// modem (a boot, a power-down, an AT time-out), not computing. An explicit
// -parallel is kept.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		if err := flag.Set("test.parallel", strconv.Itoa(max(scenarioParallel, runtime.GOMAXPROCS(0)))); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}

// scenarioParallel is how many tests run at once at least.
const scenarioParallel = 8

// t0 is where every scenario's simulated time starts.
var t0 = time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)

// rig is a supervised modem: the BG96 simulator on a real pty behind a
// udev-style symlink, the real link, optionally the operator-platform
// simulator on loopback HTTP, and fake GPIO pins wired to the simulator.
type rig struct {
	t      *testing.T
	m      *bg96emu.Modem
	srv    *bscemu.Server
	api    *bsc.Client
	link   *atsession.Keeper
	clock  *clocktest.Fake
	events *events
	store  *memStore
	pins   *board
	cfg    Config
	iccid  string
}

type rigOpts struct {
	bsc   bool
	power bool
	// instant waits take no real time: only for scenarios where the
	// simulated modem's own delays do not matter.
	instant bool
}

func newRig(t *testing.T, o rigOpts) *rig {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	// Every simulated wait takes a millisecond, so the simulated modem,
	// which registers again 2 ms after AT+CFUN=1, does so within two polls
	// rather than within an hour of instant waits.
	pace := time.Millisecond
	if o.instant {
		pace = 0
	}
	r := &rig{t: t, clock: clocktest.New(t0, pace), events: &events{}, store: &memStore{m: map[string][]byte{}}}
	simCfg := bg96emu.Config{BootDelay: 30 * time.Millisecond, RegisterDelay: 2 * time.Millisecond, Baud: bg96emu.NoPacing}
	if o.bsc {
		srv, err := bscemu.New(bscemu.Config{
			Users:      map[string]string{"admin": "secret"},
			SIMs:       []bscemu.SIMConfig{{ICCID: "89882280666012345678"}},
			ResetDelay: 10 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		if err := srv.Start("127.0.0.1:0", nil); err != nil {
			t.Fatal(err)
		}
		r.srv = srv
		if r.m, err = lab.StartModem(ctx, srv, simCfg, nil); err != nil {
			t.Fatal(err)
		}
		r.api, err = bsc.New(bsc.Config{BaseURL: srv.URL(), Username: "admin", Password: "secret", RateLimit: -1, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
	} else {
		r.m = bg96emu.New(simCfg)
		if err := r.m.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { r.m.Close() })
	r.iccid = r.m.ICCID()
	path := filepath.Join(t.TempDir(), "ttyBG96")
	if err := r.m.Link(path); err != nil {
		t.Fatal(err)
	}
	// The first reopen comes after the simulated boot.
	r.link = atsession.New(atsession.Config{Path: path, MinBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, ReadyTimeout: time.Second})
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.link.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if _, err := r.link.Wait(wctx); err != nil {
		t.Fatalf("no first session: %v", err)
	}
	if o.power {
		r.pins = newBoard(r.clock, r.m)
	}
	r.cfg = config.Default().Supervisor
	r.cfg.ATTimeout.Duration = 150 * time.Millisecond
	r.cfg.ModemTimeout.Duration = 5 * time.Second
	return r
}

func (r *rig) deps() Deps {
	d := Deps{Link: r.link, Store: r.store, Emit: r.events.add, Clock: r.clock}
	if r.api != nil {
		d.BSC = r.api
	}
	if r.pins != nil {
		pw, err := power.New(power.Pins{PWRKey: r.pins.pwrKey, ResetN: r.pins.resetN, Supply: r.pins.supply},
			power.WithClock(r.clock))
		if err != nil {
			r.t.Fatal(err)
		}
		d.Power, d.PowerLines = pw, PowerLines{PWRKey: true, ResetN: true, Supply: true}
	}
	return d
}

// at runs f when the simulated clock reaches t0+d.
func (r *rig) at(d time.Duration, f func()) {
	r.clock.AfterFunc(t0.Add(d).Sub(r.clock.Now()), f)
}

// run supervises until the simulated clock reaches t0+until, or fails the
// test if that takes more than limit of real time.
func (r *rig) run(s *Supervisor, until, limit time.Duration) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	stop, stopped := context.WithCancel(ctx)
	defer stopped()
	r.at(until, stopped)
	err := s.Run(stop)
	if ctx.Err() != nil {
		r.t.Fatalf("simulated time reached only %s after %s of real time", r.clock.Now().Sub(t0), limit)
	}
	if err == nil {
		r.t.Fatal("Run returned nil")
	}
}

func (r *rig) newSupervisor(cfg Config) *Supervisor {
	r.t.Helper()
	s, err := New(cfg, r.deps())
	if err != nil {
		r.t.Fatal(err)
	}
	return s
}

// registration is what the simulated network offers.
func lose(m *bg96emu.Modem) func() {
	return func() { _ = m.SetRegistration(bg96emu.AllDomains, bg96emu.Registration{Stat: bg96emu.Searching}) }
}

func regain(m *bg96emu.Modem) func() {
	return func() {
		_ = m.SetRegistration(bg96emu.AllDomains, bg96emu.Registration{Stat: bg96emu.Home, Area: "1A2B", Cell: "01A2B3C", AcT: bg96emu.ActEMTC})
	}
}

// events records what the supervisor emitted.
type events struct {
	mu   sync.Mutex
	list []event.Event
}

func (e *events) add(ev event.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, ev)
}

func (e *events) all() []event.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]event.Event(nil), e.list...)
}

// taken are the recovery events of steps that acted or tried to.
func (e *events) taken() []event.Event {
	var out []event.Event
	for _, ev := range e.all() {
		if ev.Type == event.Recovery && ev.Attr("attempt") != "" {
			out = append(out, ev)
		}
	}
	return out
}

// states lists the "to" of every state event.
func (e *events) states() []string {
	var out []string
	for _, ev := range e.all() {
		if ev.Type == EventState {
			out = append(out, ev.Attr("to"))
		}
	}
	return out
}

func (e *events) dump() string {
	var b strings.Builder
	for _, ev := range e.all() {
		fmt.Fprintf(&b, "  %s %-8s %-5s %s\n", ev.Time.Sub(t0), ev.Type, ev.Level, ev.Msg)
	}
	return b.String()
}

// memStore is the daemon's agent/store as far as the supervisor sees it.
type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memStore) SaveState(name string, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[name] = append([]byte(nil), b...)
	return nil
}

func (s *memStore) LoadState(name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[name]
	if !ok {
		return nil, fmt.Errorf("%w: state %q", store.ErrNotFound, name)
	}
	return b, nil
}

// board is the modem's power wiring on fake GPIO pins: it records every
// edge against the simulated clock and acts on the simulated modem as a
// BG96 acts on its lines (active low, no inverting stage): a PWRKEY press
// of at least 650 ms switches a running modem off, one of 500 ms switches
// an off modem on, a RESET_N pulse reboots it, a supply cut switches it
// off. Powering off also drops the USB port for a moment, as the real
// modem's does.
type board struct {
	clock                  *clocktest.Fake
	m                      *bg96emu.Modem
	pwrKey, resetN, supply *pin

	mu  sync.Mutex
	off bool
	// hung: the firmware ignores PWRKEY, as a hung BG96's may.
	hung bool
}

func newBoard(c *clocktest.Fake, m *bg96emu.Modem) *board {
	b := &board{clock: c, m: m}
	b.pwrKey = &pin{name: "GPIO17", b: b}
	b.resetN = &pin{name: "GPIO27", b: b}
	b.supply = &pin{name: "GPIO22", b: b}
	return b
}

func (b *board) released(p *pin, held time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case p == b.pwrKey && b.hung:
	case p == b.pwrKey && held >= 650*time.Millisecond && !b.off:
		b.off = true
		b.m.PowerOff()
		b.m.ClearFaults()
		_ = b.m.HangUp(50 * time.Millisecond)
	case p == b.pwrKey && held >= 500*time.Millisecond:
		b.off = false
		b.m.ClearFaults()
		b.m.Reboot()
	case p == b.supply:
		b.off = true
		b.m.PowerOff()
		b.m.ClearFaults()
		_ = b.m.HangUp(50 * time.Millisecond)
	case p == b.resetN && held >= 150*time.Millisecond && held <= 460*time.Millisecond:
		b.off, b.hung = false, false
		b.m.ClearFaults()
		b.m.Reboot()
	}
}

type edge struct {
	at time.Duration // since t0
	l  gpio.Level
}

// pin is a fake gpio.PinOut.
type pin struct {
	name string
	b    *board

	mu    sync.Mutex
	edges []edge
}

func (p *pin) String() string   { return p.name }
func (p *pin) Halt() error      { return nil }
func (p *pin) Name() string     { return p.name }
func (p *pin) Number() int      { return -1 }
func (p *pin) Function() string { return "Out" }
func (p *pin) PWM(gpio.Duty, physic.Frequency) error {
	return fmt.Errorf("%s: no PWM", p.name)
}

func (p *pin) Out(l gpio.Level) error {
	now := p.b.clock.Now().Sub(t0)
	p.mu.Lock()
	var held time.Duration
	pressed := false
	if n := len(p.edges); n > 0 && p.edges[n-1].l == gpio.Low && l == gpio.High {
		held, pressed = now-p.edges[n-1].at, true
	}
	p.edges = append(p.edges, edge{now, l})
	p.mu.Unlock()
	if pressed {
		p.b.released(p, held)
	}
	return nil
}

// pulses returns the lengths of the low pulses on p.
func (p *pin) pulses() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []time.Duration
	for i := 1; i < len(p.edges); i++ {
		if p.edges[i-1].l == gpio.Low && p.edges[i].l == gpio.High {
			out = append(out, p.edges[i].at-p.edges[i-1].at)
		}
	}
	return out
}
