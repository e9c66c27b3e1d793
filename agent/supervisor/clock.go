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

// SystemClock is the clock of a running agent: policy time and waits
// from c (clock.System when nil; the daemon passes its own, which a
// chaos build offsets), the boot clock from the system.
func SystemClock(c clock.Clock) Clock {
	if c == nil {
		c = clock.System
	}
	return systemClock{c}
}

type systemClock struct{ clock.Clock }

func (systemClock) Boot() (id string, up time.Duration) { return bootclock.System() }
