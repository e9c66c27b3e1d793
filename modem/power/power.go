// Package power drives the BG96's PWRKEY, RESET_N and supply lines through
// GPIO: the last rung of the recovery ladder, for a modem that no longer
// answers AT commands.
//
// The package only moves lines; the caller decides when and watches the
// modem in between, because only it sees the serial port vanish, "POWERED
// DOWN" arrive or "RDY" come back. Quectel's guidance gives the ladder its
// order:
//
//  1. AT+QPOWD=1 and wait for "POWERED DOWN" (bg96.Modem.PowerDownAndWait).
//  2. If the modem does not answer: PowerOff (a PWRKEY power-off press), then
//     wait for the AT port to vanish.
//  3. Only if it is still there: Reset (RESET_N), or CutPower. Cutting the
//     supply while the modem writes its flash has bricked modems, so it is
//     the step of last resort.
//  4. PowerOn, then wait for "RDY".
//
// # Polarity
//
// Every line has an idle level (key released, reset released, supply on)
// and an active level (key pressed, reset asserted, supply cut). The
// modem's PWRKEY and RESET_N are active low, so a GPIO wired straight to
// them idles high. Pins.Inverted is for boards with an inverting stage
// between GPIO and modem, such as the open-collector transistor of
// Quectel's reference circuit: there every line idles low and a high GPIO
// presses the key, asserts reset or cuts the supply (Sixfab's BG96 HAT, for
// one, has an inverting PWRKEY transistor and an active-high supply
// "disable" line, so one flag covers both). A board that mixes
// polarities cannot be described and needs its own wiring.
//
// With the wrong Inverted, New's release holds PWRKEY and RESET_N asserted,
// so the modem goes off or into reset at the first start. That is meant:
// better found on the bench than in a recovery months later.
package power

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"periph.io/x/conn/v3/gpio"

	"cellagent/modem/clock"
)

// BG96 timings. Only overshoot can happen (a wait never ends early), so
// each pulse sits close to the lower bound it must meet.
const (
	// PowerOnPulse meets the ≥500 ms power-on press and stays clear of the
	// 650 ms power-off press, so a power-on sent to a modem that is in fact
	// running does not switch it off.
	PowerOnPulse = 550 * time.Millisecond
	// PowerOffPulse meets the BG96's ≥650 ms power-off press and stays
	// inside the BG95's 650–1500 ms window, for a BG95 fitted in the same
	// footprint.
	PowerOffPulse = 750 * time.Millisecond
	// ResetPulse is the middle of the 150–460 ms RESET_N window.
	ResetPulse = 300 * time.Millisecond
	// SupplySettle is how long PowerOn lets the supply settle before
	// pressing the key; Quectel asks for VBAT stable for at least 30 ms.
	SupplySettle = 100 * time.Millisecond
)

// ErrNotConfigured is returned (wrapped) by an operation whose line has no
// GPIO; the recovery ladder skips that step.
var ErrNotConfigured = errors.New("not configured")

// Pins are the GPIO lines wired to the modem; any may be nil.
type Pins struct {
	PWRKey gpio.PinOut
	ResetN gpio.PinOut
	// Supply switches the modem's power rail.
	Supply gpio.PinOut
	// Inverted says an inverting stage sits between every GPIO and the
	// modem: see the package documentation.
	Inverted bool
}

// Option configures a Controller.
type Option func(*Controller)

// WithClock sets the clock the waits between two edges are measured on
// (default clock.System). A pulse width is hardware time, which policy
// time usually is not; it goes through a Clock anyway because in
// production that is the system clock, so the modem sees the real width,
// while a test's fake makes each width exact and instant and lets the
// test end a context at a chosen point of a pulse.
func WithClock(clk clock.Clock) Option {
	return func(c *Controller) {
		if clk != nil {
			c.clock = clk
		}
	}
}

// WithLogger sets the logger; every pulse is logged, since a power-cycle is
// rare and an operator will want to know it happened.
func WithLogger(l *slog.Logger) Option {
	return func(c *Controller) {
		if l != nil {
			c.log = l
		}
	}
}

// Controller moves the modem's lines. Its methods may be called from
// several goroutines; one operation runs at a time, because two pulses
// interleaved on one line make a press of neither length.
type Controller struct {
	pwrKey, resetN, supply line
	inverted               bool
	clock                  clock.Clock
	log                    *slog.Logger
	busy                   chan struct{}
}

type line struct {
	role string
	pin  gpio.PinOut
}

func (l line) String() string { return l.role + " (" + l.pin.Name() + ")" }

// New returns a Controller and releases PWRKEY and RESET_N: a process
// killed mid-pulse may have left them asserted. The supply is left alone:
// periph's Linux GPIO driver makes a line an output at low before setting
// the level asked for, a glitch that would brown out a running modem with
// an active-high supply switch. PowerOn or CutPower drive it first, when
// the modem is meant to be off anyway.
func New(p Pins, opts ...Option) (*Controller, error) {
	c := &Controller{
		pwrKey:   line{"PWRKEY", p.PWRKey},
		resetN:   line{"RESET_N", p.ResetN},
		supply:   line{"supply", p.Supply},
		inverted: p.Inverted,
		clock:    clock.System,
		log:      slog.New(slog.DiscardHandler),
		busy:     make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(c)
	}
	for _, l := range []line{c.pwrKey, c.resetN} {
		if l.pin == nil {
			continue
		}
		if err := c.drive(l, false); err != nil {
			return nil, fmt.Errorf("power: %w", err)
		}
	}
	c.log.Info("modem power lines ready", "pwrkey", name(c.pwrKey), "reset_n", name(c.resetN),
		"supply", name(c.supply), "inverted", c.inverted)
	return c, nil
}

func name(l line) string {
	if l.pin == nil {
		return ""
	}
	return l.pin.Name()
}

// PowerOn switches the modem on with a PWRKEY press. With a supply line it
// first drives the supply on and lets it settle, so that a process killed
// during CutPower cannot leave the modem unpowered for good. Call it only
// when the modem is off; it then needs about 5 s before its port appears
// and longer before "RDY".
func (c *Controller) PowerOn(ctx context.Context) error {
	return c.do(ctx, "switch on", c.pwrKey, func() error {
		if c.supply.pin != nil {
			if err := c.drive(c.supply, false); err != nil {
				return err
			}
			if err := clock.SleepOn(ctx, c.clock, SupplySettle); err != nil {
				return fmt.Errorf("waiting for the supply to settle: %w", err)
			}
		}
		return c.pulse(ctx, "switch on", c.pwrKey, PowerOnPulse)
	})
}

// PowerOff asks a running modem to shut down with a PWRKEY press, the
// graceful fallback when AT+QPOWD=1 gets no answer. The modem then detaches
// and closes its file system; wait for its port to vanish before anything
// harsher.
func (c *Controller) PowerOff(ctx context.Context) error {
	return c.do(ctx, "switch off", c.pwrKey, func() error {
		return c.pulse(ctx, "switch off", c.pwrKey, PowerOffPulse)
	})
}

// Reset pulses RESET_N. Quectel recommends it only when PWRKEY has failed:
// like a supply cut, it does not let the modem close its file system.
func (c *Controller) Reset(ctx context.Context) error {
	return c.do(ctx, "reset", c.resetN, func() error {
		return c.pulse(ctx, "reset", c.resetN, ResetPulse)
	})
}

// CutPower switches the supply off for off, then on again. Use it only
// when a graceful power-down has failed. How long the rail needs to fall
// depends on the board's capacitors; Quectel gives no figure. A modem
// whose PWRKEY is wired needs PowerOn afterwards; one without (USB cards
// usually) starts by itself. If ctx ends early the supply is
// switched back on at once.
func (c *Controller) CutPower(ctx context.Context, off time.Duration) error {
	return c.do(ctx, "cut supply", c.supply, func() error {
		if off <= 0 {
			return fmt.Errorf("off time %v must be positive", off)
		}
		return c.pulse(ctx, "cut supply", c.supply, off)
	})
}

// do runs f if l is wired, one operation at a time; waiting for another
// one honours ctx.
func (c *Controller) do(ctx context.Context, op string, l line, f func() error) error {
	if l.pin == nil {
		return fmt.Errorf("power: %s: %s %w", op, l.role, ErrNotConfigured)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("power: %s: %w", op, err)
	}
	select {
	case c.busy <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("power: %s: waiting for another operation: %w", op, ctx.Err())
	}
	defer func() { <-c.busy }()
	if err := f(); err != nil {
		return fmt.Errorf("power: %s: %w", op, err)
	}
	return nil
}

// pulse holds l active for hold and always releases it, also when the
// press failed (the write may have half-happened) or ctx ended: a line
// left asserted keeps the modem off or in reset.
func (c *Controller) pulse(ctx context.Context, op string, l line, hold time.Duration) error {
	c.log.Info("modem power: pulse", "op", op, "line", l.String(), "hold", hold)
	if err := c.drive(l, true); err != nil {
		return errors.Join(err, c.release(op, l))
	}
	slept := clock.SleepOn(ctx, c.clock, hold)
	if err := c.release(op, l); err != nil {
		return errors.Join(slept, err)
	}
	if slept != nil {
		c.log.Warn("modem power: pulse cut short, line released", "op", op, "line", l.String(), "err", slept)
		return fmt.Errorf("%s pulse cut short (line released): %w", l.role, slept)
	}
	return nil
}

func (c *Controller) release(op string, l line) error {
	err := c.drive(l, false)
	if err != nil {
		c.log.Error("modem power: cannot release line", "op", op, "line", l.String(), "err", err)
	}
	return err
}

// drive sets l to its active or idle level; see the package documentation
// for the polarity.
func (c *Controller) drive(l line, active bool) error {
	lvl := gpio.Level(active == c.inverted)
	if err := l.pin.Out(lvl); err != nil {
		state := "idle"
		if active {
			state = "active"
		}
		return fmt.Errorf("drive %s %s (%s): %w", l, state, lvl, err)
	}
	return nil
}
