package supervisor

import (
	"sort"
	"sync"
	"time"

	"cellagent/agent/bootclock"
)

// Clock is the supervisor's policy time: poll interval, grace, step waits,
// budgets, back-off and park are all measured on it. Waits for hardware
// (an AT answer, a modem booting, a port coming back, an HTTP call) are
// not: they are bounded by real-time contexts, because no clock makes a
// modem boot faster, and a fake clock that skipped ahead while a modem
// booted would declare it dead.
//
// Only the supervisor's Run goroutine waits on the clock.
type Clock interface {
	Now() time.Time
	// After delivers once d has passed.
	After(d time.Duration) <-chan time.Time
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

// FakeClock is a Clock whose time moves only when its one waiter waits:
// After(d) moves it d forward at once and returns a channel that has
// already delivered, so a simulated week of polls and waits runs as fast
// as the real work between them. Functions scheduled with AfterFunc run,
// in time order, on the waiter's goroutine as the clock reaches their
// time, and After returns at that time, as a real waiter would be woken
// by what the function did; this lets a test change the simulated world
// at exact points of simulated time without racing the supervisor.
//
// The simulated modem still takes real milliseconds to act (to register
// again after AT+CFUN=1, say), which instant waits would stretch into
// simulated hours: a pace makes every wait also take that much real time.
type FakeClock struct {
	pace  time.Duration
	mu    sync.Mutex
	start time.Time
	now   time.Time
	seq   int
	hooks []fakeHook
}

type fakeHook struct {
	at  time.Time
	seq int // keeps hooks at the same instant in scheduling order
	f   func()
}

// NewFakeClock returns a fake clock reading start whose waits each take
// pace of real time (0: none).
func NewFakeClock(start time.Time, pace time.Duration) *FakeClock {
	return &FakeClock{start: start, now: start, pace: pace}
}

// Boot: the fake system booted when the clock started, and never reboots.
func (c *FakeClock) Boot() (id string, up time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return "fake-boot", c.now.Sub(c.start)
}

// Now returns the fake time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After advances the clock by d, or to the first hook due before that,
// running the hooks due at that instant.
func (c *FakeClock) After(d time.Duration) <-chan time.Time {
	if c.pace > 0 && d > 0 {
		time.Sleep(c.pace)
	}
	c.mu.Lock()
	target := c.now.Add(max(d, 0))
	if len(c.hooks) > 0 && c.hooks[0].at.Before(target) {
		target = latest(c.now, c.hooks[0].at)
	}
	c.mu.Unlock()
	c.Advance(target.Sub(c.Now()))
	ch := make(chan time.Time, 1)
	ch <- c.Now()
	return ch
}

// Advance moves the clock d forward, stopping at each due hook to run it
// without the lock held, so a hook may read the clock or schedule more.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(max(d, 0))
	for len(c.hooks) > 0 && !c.hooks[0].at.After(target) {
		h := c.hooks[0]
		c.hooks = c.hooks[1:]
		if h.at.After(c.now) {
			c.now = h.at
		}
		c.mu.Unlock()
		h.f()
		c.mu.Lock()
	}
	if target.After(c.now) {
		c.now = target
	}
	c.mu.Unlock()
}

// AfterFunc schedules f to run when the clock reaches d from now.
func (c *FakeClock) AfterFunc(d time.Duration, f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	c.hooks = append(c.hooks, fakeHook{at: c.now.Add(d), seq: c.seq, f: f})
	sort.Slice(c.hooks, func(i, j int) bool {
		a, b := c.hooks[i], c.hooks[j]
		return a.at.Before(b.at) || a.at.Equal(b.at) && a.seq < b.seq
	})
}
