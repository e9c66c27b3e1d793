package bg96

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"cellagent/modem/at"
)

// Watch collects URCs with given prefixes from the moment Expect returns,
// so that a command provoking a URC can be sent after arming it without
// losing a fast answer. It sits beside any other handlers of its prefixes.
type Watch struct {
	removes []func()
	ch      chan []string
	once    sync.Once
}

// watchBuffer bounds the URCs a watch keeps unread; the start-up burst is
// about five lines.
const watchBuffer = 32

// Expect arms a watch for URCs starting with any of prefixes.
func Expect(ind Indicator, prefixes ...string) *Watch {
	w := &Watch{ch: make(chan []string, watchBuffer)}
	for _, p := range prefixes {
		w.removes = append(w.removes, ind.AddIndication(p, func(lines []string) {
			// Never block the engine's dispatcher on a watcher gone away.
			select {
			case w.ch <- lines:
			default:
			}
		}))
	}
	return w
}

// Wait returns the lines of the next URC the watch caught.
func (w *Watch) Wait(ctx context.Context) ([]string, error) {
	select {
	case l := <-w.ch:
		return l, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// Stop removes the watch's handlers. It is safe to call more than once.
func (w *Watch) Stop() {
	w.once.Do(func() {
		for _, remove := range w.removes {
			remove()
		}
	})
}

// Polling limits of WaitReady. A booting BG96 ignores AT for about three
// seconds; a short per-poll limit keeps the loop responsive to URCs.
const (
	pollTimeout  = time.Second
	pollFirst    = 250 * time.Millisecond
	pollMaxDelay = 4 * time.Second
)

// WaitReady returns when the modem can take the init script. Two ways lead
// there:
//
//   - the start-up URCs: RDY, +CPIN: READY and +QIND: SMS DONE (APP RDY is
//     not awaited: older BG96 firmware never prints it);
//   - an OK to a polled "AT" when no start-up URC has been seen, because the
//     agent started after the modem had booted.
//
// Once any start-up URC is seen the modem is booting, and OK to AT no longer
// suffices: it answers AT before the SIM is ready, and AT+CPMS would fail.
// A SIM that wants a PIN or PUK is an error at once, since waiting cannot
// help. The polls back off from 250 ms to 4 s.
func WaitReady(ctx context.Context, c Commander, ind Indicator) error {
	w := Expect(ind, "RDY", "+CPIN:", "+QIND:")
	defer w.Stop()
	var rdy, cpin, sms bool
	take := func(lines []string) error {
		l := strings.TrimSpace(lines[0])
		switch {
		case l == "RDY":
			rdy = true
		case strings.HasPrefix(l, "+QIND:"):
			if f, err := fields(l, "+QIND:"); err == nil && strings.EqualFold(f[0], "SMS DONE") {
				sms = true
			}
		case strings.HasPrefix(l, "+CPIN:"):
			st, err := ParseCPIN(l)
			if err != nil {
				return fmt.Errorf("bg96: waiting for the modem: %w", err)
			}
			if st == PINReady {
				cpin = true
			} else if strings.Contains(string(st), "PIN") || strings.Contains(string(st), "PUK") {
				return fmt.Errorf("%w (%s); enter or disable the PIN", ErrSIMLocked, st)
			}
		}
		return nil
	}
	drain := func() error {
		for {
			select {
			case lines := <-w.ch:
				if err := take(lines); err != nil {
					return err
				}
			default:
				return nil
			}
		}
	}
	// +CPIN: READY and SMS DONE can only follow RDY, so they suffice when
	// the watch was armed after RDY had gone by.
	booting := func() bool { return rdy || cpin || sms }
	delay := pollFirst
	timer := time.NewTimer(pollFirst)
	defer timer.Stop()
	for {
		if err := drain(); err != nil {
			return err
		}
		if cpin && sms {
			return nil
		}
		if !booting() {
			_, err := c.Command(ctx, "AT", at.WithTimeout(pollTimeout))
			// The engine runs URC handlers on their own goroutine, so an RDY
			// printed just before this OK could still be in flight; drain
			// narrows that window, and a booting BG96 ignores AT until RDY.
			if err := drain(); err != nil {
				return err
			}
			switch {
			case err == nil && !booting():
				return nil
			case errors.Is(err, at.ErrClosed):
				return fmt.Errorf("bg96: waiting for the modem: %w", err)
			}
		}
		timer.Reset(delay)
		delay = min(2*delay, pollMaxDelay)
		select {
		case <-ctx.Done():
			return fmt.Errorf("bg96: modem not ready (%s): %w", seen(rdy, cpin, sms), context.Cause(ctx))
		case <-timer.C:
		case lines := <-w.ch:
			if err := take(lines); err != nil {
				return err
			}
		}
	}
}

func seen(rdy, cpin, sms bool) string {
	var have, want []string
	for _, u := range []struct {
		ok   bool
		name string
	}{{rdy, "RDY"}, {cpin, "+CPIN: READY"}, {sms, "+QIND: SMS DONE"}} {
		if u.ok {
			have = append(have, u.name)
		} else {
			want = append(want, u.name)
		}
	}
	if len(have) == 0 {
		return "no answer to AT and no start-up URC"
	}
	return "saw " + strings.Join(have, ", ") + "; still waiting for " + strings.Join(want, ", ")
}
