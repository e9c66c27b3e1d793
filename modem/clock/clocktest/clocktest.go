// Package clocktest is the fake beside clock.Clock, for tests: time that
// moves only when the code under test waits on it or the test advances it.
package clocktest

import (
	"sort"
	"sync"
	"time"
)

// Fake is a clock.Clock whose time moves only when its one waiter waits:
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
type Fake struct {
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

// New returns a fake clock reading start whose waits each take pace of
// real time (0: none).
func New(start time.Time, pace time.Duration) *Fake {
	return &Fake{start: start, now: start, pace: pace}
}

// Boot is a boot clock (bootclock.Source): the fake system booted when
// the clock started, and never reboots.
func (c *Fake) Boot() (id string, up time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return "fake-boot", c.now.Sub(c.start)
}

// Now returns the fake time.
func (c *Fake) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After advances the clock by d, or to the first hook due before that,
// running the hooks due at that instant.
func (c *Fake) After(d time.Duration) <-chan time.Time {
	if c.pace > 0 && d > 0 {
		time.Sleep(c.pace)
	}
	c.mu.Lock()
	target := c.now.Add(max(d, 0))
	if len(c.hooks) > 0 && c.hooks[0].at.Before(target) {
		target = c.hooks[0].at
		if target.Before(c.now) {
			target = c.now
		}
	}
	c.mu.Unlock()
	c.Advance(target.Sub(c.Now()))
	ch := make(chan time.Time, 1)
	ch <- c.Now()
	return ch
}

// Advance moves the clock d forward, stopping at each due hook to run it
// without the lock held, so a hook may read the clock or schedule more.
func (c *Fake) Advance(d time.Duration) {
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

// Step moves the reading by d, back as well as forward, running no hooks:
// a wall clock set by NTP or by hand, for the code that must survive it.
func (c *Fake) Step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// AfterFunc schedules f to run when the clock reaches d from now.
func (c *Fake) AfterFunc(d time.Duration, f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	c.hooks = append(c.hooks, fakeHook{at: c.now.Add(d), seq: c.seq, f: f})
	sort.Slice(c.hooks, func(i, j int) bool {
		a, b := c.hooks[i], c.hooks[j]
		return a.at.Before(b.at) || a.at.Equal(b.at) && a.seq < b.seq
	})
}
