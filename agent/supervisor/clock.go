package supervisor

import (
	"time"

	"cellagent/agent/bootclock"
	"cellagent/modem/clock"
)

// Clock is the supervisor's policy time (the project's clock.Clock, whose
// fake is clocktest.Fake) with the boot clock: poll interval, grace, step waits,
// budgets, back-off and park are all measured on it. Waits for hardware
// (an AT answer, a modem booting, a port coming back, an HTTP call) are
// not: they are bounded by real-time contexts, because no clock makes a
// modem boot faster, and a fake clock that skipped ahead while a modem
// booted would declare it dead.
//
// Only the supervisor's Run goroutine waits on the clock.
type Clock interface {
	clock.Clock
	// Boot is the boot clock (a bootclock.Source). The saved history
	// carries its reading, so a wall clock stepped between a save and
	// the next start neither frees the budgets nor blocks them.
	Boot() (id string, up time.Duration)
}

// SystemClock is the clock of a running agent: policy time from now
// (time.Now when nil, which the daemon replaces only in test builds),
// waits and the boot clock from the system.
func SystemClock(now func() time.Time) Clock {
	if now == nil {
		now = time.Now
	}
	return systemClock{now: now}
}

type systemClock struct{ now func() time.Time }

func (c systemClock) Now() time.Time                       { return c.now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
func (systemClock) Boot() (id string, up time.Duration)    { return bootclock.System() }
