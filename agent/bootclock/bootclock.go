// Package bootclock tells how far the wall clock was stepped between two
// moments of one boot, for state that outlives the process. A gateway
// without an RTC has its clock stepped by NTP, often by hours or years;
// times saved before such a step and read after it would otherwise free
// or block every budget measured from them. Within one process Go
// measures elapsed time on the monotonic clock and needs none of this.
package bootclock

import (
	"errors"
	"fmt"
	"time"
)

// Source names the system's current boot and tells how long it has been
// up, on a clock nobody sets. An empty id means unknown.
type Source func() (id string, up time.Duration)

// maxSpan bounds the readings a Mark may carry, so the arithmetic on them
// cannot overflow a Duration (292 years).
const maxSpan = 100 * 365 * 24 * time.Hour

// Mark is the wall clock and the boot clock read at one moment, saved
// with the state it dates. The zero Mark is unknown.
type Mark struct {
	Boot string `json:"boot,omitempty"`
	Wall int64  `json:"saved,omitempty"` // unix ms
	Up   int64  `json:"up,omitempty"`    // ms since the boot began
}

// Read marks now on src (System when nil).
func Read(now time.Time, src Source) Mark {
	if src == nil {
		src = System
	}
	id, up := src()
	if id == "" {
		return Mark{}
	}
	return Mark{Boot: id, Wall: now.UnixMilli(), Up: up.Milliseconds()}
}

// Validate checks a Mark read from outside: all fields or none, in range.
func (m Mark) Validate() error {
	switch {
	case m == Mark{}:
		return nil
	case m.Boot == "" || m.Wall <= 0:
		return fmt.Errorf("boot %q, saved %d, up %d: all or none", m.Boot, m.Wall, m.Up)
	case m.Up < 0 || m.Up > maxSpan.Milliseconds():
		return fmt.Errorf("up %d outside 0..%d", m.Up, maxSpan.Milliseconds())
	}
	return nil
}

// ErrOtherBoot: the marks are of different boots, or one is unknown.
var ErrOtherBoot = errors.New("bootclock: not the same boot")

// Step is how far the wall clock was stepped between m and the later
// mark now: the wall clock's advance less the boot clock's. Times read on
// the wall clock at m are, on the wall clock at now, that much later.
func (m Mark) Step(now Mark) (time.Duration, error) {
	if m.Boot == "" || m.Boot != now.Boot {
		return 0, ErrOtherBoot
	}
	up := time.Duration(now.Up-m.Up) * time.Millisecond
	wall := time.UnixMilli(now.Wall).Sub(time.UnixMilli(m.Wall))
	if up < 0 || wall.Abs() > maxSpan || now.Validate() != nil || m.Validate() != nil {
		return 0, fmt.Errorf("bootclock: boot clock at %d ms then %d ms, wall clock advanced %s", m.Up, now.Up, wall)
	}
	return wall - up, nil
}
