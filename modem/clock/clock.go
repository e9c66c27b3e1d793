// Package clock is the one home of time for every layer: the Clock the
// loops measure policy time on, its system implementation, the one
// context-aware sleep and the one exponential back-off. Its fake lives
// beside it in clocktest.
//
// It sits under modem only because modem/* is the lowest layer and may
// import nothing above it; agent/* and transport/* import it as well. It
// imports nothing of the project's.
package clock

import (
	"context"
	"time"
)

// Clock is policy time: intervals, budgets and back-offs are measured on
// it, so a test can run a simulated week in seconds. Waits for hardware
// or the network are not: they take real-time contexts.
type Clock interface {
	Now() time.Time
	// After delivers once d has passed.
	After(d time.Duration) <-chan time.Time
}

// System is the machine's clock.
var System Clock = system{}

type system struct{}

func (system) Now() time.Time                         { return time.Now() }
func (system) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Sleep waits d of real time, or until ctx ends (then its error).
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SleepOn waits d on c, or until ctx ends (then its error): Sleep on
// policy time. On a fake clock the wait moves the fake's time instead of
// taking real time; a fake that wakes its waiter early (clocktest.Fake
// does at a scheduled function) is waited on again for the rest. A
// context already ended waits for nothing, so a fake clock does not move
// for a wait that was never going to happen.
//
// It is a function rather than a method of Clock so that every Clock
// (and every type embedding one) gets it without writing it again.
func SleepOn(ctx context.Context, c Clock, d time.Duration) error {
	if err := ctx.Err(); err != nil || d <= 0 {
		return err
	}
	if c == System {
		return Sleep(ctx, d)
	}
	end := c.Now().Add(d)
	for {
		select {
		case <-c.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d = end.Sub(c.Now()); d <= 0 {
			return nil
		}
	}
}

// Backoff is the delay before retry n (n ≥ 1): base, doubling with every
// retry, never above limit. n below 1 counts as 1.
func Backoff(base, limit time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}
