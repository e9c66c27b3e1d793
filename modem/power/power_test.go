package power

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"

	"cellagent/modem/clock/clocktest"
)

// t0 is where every test's fake clock starts. gpiotest.Pin keeps only the
// last level, and brings a module of its own, so the tests record edges
// against the fake clock instead.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func newClock() *clocktest.Fake { return clocktest.New(t0, 0) }

type edge struct {
	at time.Duration
	l  gpio.Level
}

func (e edge) String() string { return fmt.Sprintf("%v@%v", e.l, e.at) }

// fakePin records every level written, with the time since t0 on its clock. It is a full
// gpio.PinIO so that it can stand in gpioreg for Open.
type fakePin struct {
	name string
	clk  *clocktest.Fake

	mu    sync.Mutex
	edges []edge
	fail  map[gpio.Level]error
}

func (p *fakePin) Out(l gpio.Level) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.fail[l]; err != nil {
		return err
	}
	p.edges = append(p.edges, edge{p.clk.Now().Sub(t0), l})
	return nil
}

func (p *fakePin) failOn(l gpio.Level, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail = map[gpio.Level]error{l: err}
}

func (p *fakePin) recorded() []edge {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]edge(nil), p.edges...)
}

func (p *fakePin) String() string                         { return p.name }
func (p *fakePin) Halt() error                            { return nil }
func (p *fakePin) Name() string                           { return p.name }
func (p *fakePin) Number() int                            { return -1 }
func (p *fakePin) Function() string                       { return "Out" }
func (p *fakePin) PWM(gpio.Duty, physic.Frequency) error  { return errors.New("fake: no PWM") }
func (p *fakePin) In(gpio.Pull, gpio.Edge) error          { return errors.New("fake: output only") }
func (p *fakePin) Read() gpio.Level                       { return gpio.Low }
func (p *fakePin) WaitForEdge(timeout time.Duration) bool { return false }
func (p *fakePin) Pull() gpio.Pull                        { return gpio.PullNoChange }
func (p *fakePin) DefaultPull() gpio.Pull                 { return gpio.PullNoChange }

type rig struct {
	clk                    *clocktest.Fake
	pwrKey, resetN, supply *fakePin
	c                      *Controller
}

// newRig wires the lines named in wired ("pwrkey", "reset_n", "supply").
func newRig(t *testing.T, inverted bool, wired ...string) *rig {
	t.Helper()
	r := &rig{clk: newClock()}
	r.pwrKey = &fakePin{name: "GPIO17", clk: r.clk}
	r.resetN = &fakePin{name: "GPIO27", clk: r.clk}
	r.supply = &fakePin{name: "GPIO22", clk: r.clk}
	p := Pins{Inverted: inverted}
	for _, w := range wired {
		switch w {
		case "pwrkey":
			p.PWRKey = r.pwrKey
		case "reset_n":
			p.ResetN = r.resetN
		case "supply":
			p.Supply = r.supply
		default:
			t.Fatalf("unknown line %q", w)
		}
	}
	c, err := New(p, WithClock(r.clk))
	if err != nil {
		t.Fatal(err)
	}
	r.c = c
	return r
}

const (
	H = gpio.High
	L = gpio.Low
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// flip turns the levels of a board wired straight into those of an
// inverted one; times stay.
func flip(es []edge) []edge {
	var out []edge
	for _, e := range es {
		out = append(out, edge{e.at, !e.l})
	}
	return out
}

var all = []string{"pwrkey", "reset_n", "supply"}

// The expected edges are those of a board wired straight to the modem,
// where PWRKEY and RESET_N are active low and the supply is on when high.
// New's releases at time 0 come first.
var opCases = []struct {
	name  string
	wired []string
	op    func(*Controller, context.Context) error
	// pulseAt is when the pulse starts, for the cancellation test.
	pulseAt                time.Duration
	hold                   time.Duration
	pwrKey, resetN, supply []edge
}{
	{
		name: "PowerOn", wired: all, op: (*Controller).PowerOn, pulseAt: ms(100), hold: ms(550),
		// Supply on, 100 ms to settle, then a 550 ms press.
		pwrKey: []edge{{0, H}, {ms(100), L}, {ms(650), H}},
		resetN: []edge{{0, H}},
		supply: []edge{{0, H}},
	},
	{
		name: "PowerOn without supply", wired: []string{"pwrkey"}, op: (*Controller).PowerOn, hold: ms(550),
		pwrKey: []edge{{0, H}, {0, L}, {ms(550), H}},
	},
	{
		name: "PowerOff", wired: all, op: (*Controller).PowerOff, hold: ms(750),
		pwrKey: []edge{{0, H}, {0, L}, {ms(750), H}},
		resetN: []edge{{0, H}},
	},
	{
		name: "Reset", wired: all, op: (*Controller).Reset, hold: ms(300),
		pwrKey: []edge{{0, H}},
		resetN: []edge{{0, H}, {0, L}, {ms(300), H}},
	},
	{
		name: "CutPower", wired: all, hold: 2 * time.Second,
		op: func(c *Controller, ctx context.Context) error { return c.CutPower(ctx, 2*time.Second) },
		// New leaves the supply alone; the cut is its first write.
		pwrKey: []edge{{0, H}},
		resetN: []edge{{0, H}},
		supply: []edge{{0, L}, {2 * time.Second, H}},
	},
}

func TestPulses(t *testing.T) {
	for _, tc := range opCases {
		for _, inverted := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/inverted=%v", tc.name, inverted), func(t *testing.T) {
				r := newRig(t, inverted, tc.wired...)
				if err := tc.op(r.c, context.Background()); err != nil {
					t.Fatal(err)
				}
				for _, l := range []struct {
					name string
					pin  *fakePin
					want []edge
				}{{"PWRKEY", r.pwrKey, tc.pwrKey}, {"RESET_N", r.resetN, tc.resetN}, {"supply", r.supply, tc.supply}} {
					want := l.want
					if inverted {
						want = flip(want)
					}
					if got := l.pin.recorded(); !reflect.DeepEqual(got, want) {
						t.Errorf("%s: edges %v, want %v", l.name, got, want)
					}
				}
			})
		}
	}
}

// A pulse cut short by ctx must still release its line: PWRKEY left
// pressed switches the modem off, RESET_N left low holds it in reset, and
// a supply left cut leaves it dead.
func TestCancelMidPulseReleases(t *testing.T) {
	for _, tc := range opCases {
		for _, inverted := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/inverted=%v", tc.name, inverted), func(t *testing.T) {
				r := newRig(t, inverted, tc.wired...)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				r.clk.AfterFunc(tc.pulseAt+tc.hold/3, cancel)
				err := tc.op(r.c, ctx)
				if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "cut short") {
					t.Fatalf("err = %v, want a cut-short pulse and context.Canceled", err)
				}
				idle := gpio.Level(!inverted)
				var pulsed *fakePin
				for _, p := range []*fakePin{r.pwrKey, r.resetN, r.supply} {
					es := p.recorded()
					if len(es) == 0 {
						continue
					}
					if last := es[len(es)-1]; last.l != idle {
						t.Errorf("%s left at %v, want idle %v", p.name, last.l, idle)
					}
					if len(es) >= 2 && es[len(es)-2].l != idle {
						pulsed = p
						if w := es[len(es)-1].at - es[len(es)-2].at; w != tc.hold/3 {
							t.Errorf("%s pulse lasted %v, want %v: released when cancelled", p.name, w, tc.hold/3)
						}
					}
				}
				if pulsed == nil {
					t.Error("no line was pulsed before the cancel")
				}
			})
		}
	}
}

func TestCancelWhileSupplySettles(t *testing.T) {
	r := newRig(t, false, all...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.clk.AfterFunc(SupplySettle/3, cancel)
	if err := r.c.PowerOn(ctx); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "settle") {
		t.Fatalf("err = %v", err)
	}
	// The key was never pressed: only New's release.
	if got, want := r.pwrKey.recorded(), []edge{{0, H}}; !reflect.DeepEqual(got, want) {
		t.Errorf("PWRKEY edges %v, want %v", got, want)
	}
}

func TestCancelledBeforeStartTouchesNothing(t *testing.T) {
	r := newRig(t, false, all...)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for name, op := range map[string]func(context.Context) error{
		"PowerOn": r.c.PowerOn, "PowerOff": r.c.PowerOff, "Reset": r.c.Reset,
		"CutPower": func(ctx context.Context) error { return r.c.CutPower(ctx, time.Second) },
	} {
		if err := op(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	for _, p := range []*fakePin{r.pwrKey, r.resetN} {
		if got := p.recorded(); len(got) != 1 {
			t.Errorf("%s: edges %v, want only New's release", p.name, got)
		}
	}
	if got := r.supply.recorded(); len(got) != 0 {
		t.Errorf("supply: edges %v, want none", got)
	}
}

func TestNotConfigured(t *testing.T) {
	c, err := New(Pins{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		err  error
		line string
	}{
		{c.PowerOn(ctx), "PWRKEY"},
		{c.PowerOff(ctx), "PWRKEY"},
		{c.Reset(ctx), "RESET_N"},
		{c.CutPower(ctx, time.Second), "supply"},
	} {
		if !errors.Is(tc.err, ErrNotConfigured) || !strings.Contains(tc.err.Error(), tc.line+" not configured") {
			t.Errorf("err = %v, want %s not configured", tc.err, tc.line)
		}
	}
	// A board with only a supply switch (a USB card) can still be cut.
	r := newRig(t, false, "supply")
	if err := r.c.Reset(ctx); !errors.Is(err, ErrNotConfigured) {
		t.Errorf("Reset: %v", err)
	}
	if err := r.c.CutPower(ctx, time.Second); err != nil {
		t.Errorf("CutPower: %v", err)
	}
}

func TestCutPowerRejectsNoOffTime(t *testing.T) {
	r := newRig(t, false, all...)
	if err := r.c.CutPower(context.Background(), 0); err == nil || !strings.Contains(err.Error(), "must be positive") {
		t.Fatalf("err = %v", err)
	}
	if got := r.supply.recorded(); len(got) != 0 {
		t.Errorf("supply moved: %v", got)
	}
}

func TestWriteFailures(t *testing.T) {
	boom := errors.New("gpio: line busy")

	// A line that cannot be released at start is a misconfiguration to
	// report, not to run with.
	clk := newClock()
	bad := &fakePin{name: "GPIO17", clk: clk}
	bad.failOn(H, boom)
	if _, err := New(Pins{PWRKey: bad}, WithClock(clk)); !errors.Is(err, boom) || !strings.Contains(err.Error(), "PWRKEY (GPIO17)") {
		t.Errorf("New: err = %v", err)
	}

	// The press fails: the error names the line, and a release is still
	// tried because the write may have half-happened.
	r := newRig(t, false, all...)
	r.resetN.failOn(L, boom)
	err := r.c.Reset(context.Background())
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "power: reset: drive RESET_N (GPIO27) active (Low)") {
		t.Errorf("Reset: err = %v", err)
	}
	if got, want := r.resetN.recorded(), []edge{{0, H}, {0, H}}; !reflect.DeepEqual(got, want) {
		t.Errorf("RESET_N edges %v, want %v", got, want)
	}

	// The release fails: that must not pass for success.
	r = newRig(t, true, all...)
	r.pwrKey.failOn(L, boom)
	err = r.c.PowerOff(context.Background())
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "idle (Low)") {
		t.Errorf("PowerOff: err = %v", err)
	}
}

// One operation at a time: a second one waits, and gives up when its
// context ends, without touching any line.
func TestOperationsDoNotInterleave(t *testing.T) {
	entered, hold := make(chan struct{}), make(chan struct{})
	clk := newClock()
	pwr := &fakePin{name: "GPIO17", clk: clk}
	rst := &fakePin{name: "GPIO27", clk: clk}
	c, err := New(Pins{PWRKey: pwr, ResetN: rst}, WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	// A third of the way through the press, PowerOff stays in its wait
	// until the test lets it go on.
	clk.AfterFunc(PowerOffPulse/3, func() {
		close(entered)
		<-hold
	})
	done := make(chan error)
	go func() { done <- c.PowerOff(context.Background()) }()
	select {
	case <-entered:
	case err := <-done:
		t.Fatalf("PowerOff returned (%v) without waiting a third of its press", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.Reset(ctx); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "another operation") {
		t.Errorf("Reset while PowerOff runs: %v", err)
	}
	if got := rst.recorded(); len(got) != 1 {
		t.Errorf("RESET_N moved while PWRKEY was pressed: %v", got)
	}
	close(hold)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Held up midway, the press still lasted its full width.
	if got, want := pwr.recorded(), []edge{{0, H}, {0, L}, {PowerOffPulse, H}}; !reflect.DeepEqual(got, want) {
		t.Errorf("PWRKEY edges %v, want %v", got, want)
	}
}
