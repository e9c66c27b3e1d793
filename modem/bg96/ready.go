package bg96

import (
	"context"
	"fmt"
	"sync"
	"time"

	"cellagent/modem/at"
	"cellagent/modem/clock"
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
	var b boot
	// drain feeds the URCs already caught to the machine, so a poll's
	// answer is judged after what the modem printed before it.
	drain := func() {
		for {
			select {
			case lines := <-w.ch:
				b = b.next(bootEvent{kind: bootURC, line: lines[0]})
			default:
				return
			}
		}
	}
	waits := 0
	timer := time.NewTimer(pollFirst)
	defer timer.Stop()
	for {
		drain()
		switch b.action() {
		case bootDone:
			return nil
		case bootFail:
			return b.err
		case bootPoll:
			_, err := c.Command(ctx, "AT", at.WithTimeout(pollTimeout))
			// The engine runs URC handlers on their own goroutine, so an
			// RDY printed just before this OK could still be in flight;
			// drain narrows that window, and a booting BG96 ignores AT
			// until RDY.
			drain()
			b = b.next(bootEvent{kind: bootAT, err: err})
			continue
		}
		waits++
		timer.Reset(clock.Backoff(pollFirst, pollMaxDelay, waits))
		select {
		case <-ctx.Done():
			return fmt.Errorf("bg96: modem not ready (%s): %w", b, context.Cause(ctx))
		case <-timer.C:
			b = b.next(bootEvent{kind: bootTick})
		case lines := <-w.ch:
			b = b.next(bootEvent{kind: bootURC, line: lines[0]})
		}
	}
}
