package supervisor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"cellagent/agent/bootclock"
	"cellagent/agent/config"
	"cellagent/agent/ratelimit"
)

const day = 24 * time.Hour

// history is when each ladder step was taken, within the last day: the
// budgets are sliding windows over it, exact where a fixed hourly counter
// would let twice the budget through across the hour's boundary.
type history map[stepID]ratelimit.Log

func (h history) add(id stepID, t time.Time) { h[id] = h[id].Add(t, 1) }

// remove takes back one record of id at t: the platform answered 429, so
// it did not act, and the attempt must not cost budget.
func (h history) remove(id stepID, t time.Time) { h[id] = h[id].Remove(t) }

func (h history) prune(now time.Time) {
	for id, l := range h {
		h[id] = l.Expire(now.Add(-day))
	}
}

func (h history) total(now time.Time) int {
	n := 0
	for _, l := range h {
		n += l.Since(now.Add(-day))
	}
	return n
}

// budget is what a step may still do now.
type budget struct {
	hourLeft, dayLeft int
	// next is when the step may run again; zero when it may run now.
	next time.Time
	// why says what blocks it, empty when nothing does.
	why string
}

func (h history) budget(id stepID, sc config.StepConfig, now time.Time) budget {
	if sc.PerHour <= 0 || sc.PerDay <= 0 {
		return budget{why: "disabled by its configuration (no budget)"}
	}
	l := h[id]
	var b budget
	for _, w := range []struct {
		ratelimit.Window
		left *int
		what string
	}{
		{ratelimit.Window{Period: time.Hour, Max: sc.PerHour}, &b.hourLeft, fmt.Sprintf("hourly budget (%d) used", sc.PerHour)},
		{ratelimit.Window{Period: day, Max: sc.PerDay}, &b.dayLeft, fmt.Sprintf("daily budget (%d) used", sc.PerDay)},
	} {
		_, used, free := l.Fit(w.Window, now, 1)
		*w.left = max(w.Max-used, 0)
		if free.After(b.next) {
			b.next, b.why = free, w.what
		}
	}
	if len(l) > 0 && sc.MinInterval.Duration > 0 {
		if at := l[len(l)-1].At.Add(sc.MinInterval.Duration); at.After(now) && at.After(b.next) {
			b.next, b.why = at, fmt.Sprintf("last run less than %s ago", sc.MinInterval.Duration)
		}
	}
	return b
}

// saved is what survives a restart: without it a crash-looping agent would
// start every run with full budgets and could reset the modem at each
// start.
type saved struct {
	hist        history
	rounds      int
	nextRound   time.Time
	parkedUntil time.Time
}

// stateVersion is the "v" of the persisted blob; version 1 (without the
// boot fields) is still read.
const stateVersion = 2

// maxSaved bounds the records per step a blob may carry: more than any
// sane budget for a day, few enough to keep a corrupt blob harmless.
const maxSaved = 1000

type savedJSON struct {
	V           int                `json:"v"`
	Actions     map[string][]int64 `json:"actions,omitempty"` // unix ms
	Rounds      int                `json:"rounds,omitempty"`
	NextRound   int64              `json:"next_round,omitempty"` // unix ms
	ParkedUntil int64              `json:"parked_until,omitempty"`
	bootclock.Mark
}

// stamp is when the blob is written or read: the policy clock and the
// boot clock at the same instant.
type stamp struct {
	now  time.Time
	mark bootclock.Mark
}

func stampOf(c Clock) stamp {
	now := c.Now()
	return stamp{now: now, mark: bootclock.Read(now, c.Boot)}
}

// encodeSaved writes the times as seen from at.now: a time taken before
// a step of the wall clock in this process is written as elapsed time
// (the monotonic reading) before now, not as the wall clock then read.
func encodeSaved(s saved, at stamp) ([]byte, error) {
	wall := func(t time.Time) int64 { return at.now.Add(t.Sub(at.now)).UnixMilli() }
	j := savedJSON{V: stateVersion, Rounds: s.rounds, Actions: map[string][]int64{}}
	for id, ts := range s.hist {
		for _, e := range ts {
			j.Actions[stepNames[id]] = append(j.Actions[stepNames[id]], wall(e.At))
		}
	}
	if !s.nextRound.IsZero() {
		j.NextRound = wall(s.nextRound)
	}
	if !s.parkedUntil.IsZero() {
		j.ParkedUntil = wall(s.parkedUntil)
	}
	j.Mark = at.mark
	b, err := json.Marshal(j)
	if err != nil {
		return nil, fmt.Errorf("supervisor: encode state: %w", err)
	}
	return b, nil
}

// decodeSaved reads a blob written by encodeSaved. Written in this boot,
// its times are moved by however much the wall clock was stepped since
// (the wall clock's advance less the boot clock's). Written in another
// boot, they are taken as they are, and records stamped in the future
// (the clock was set back since) are taken as made now, which keeps them
// counting for a day instead of blocking a step until the clock catches
// up, or being ignored.
func decodeSaved(b []byte, at stamp) (saved, error) {
	fail := func(format string, args ...any) (saved, error) {
		return saved{}, fmt.Errorf("supervisor: bad saved state: "+format, args...)
	}
	var j savedJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fail("%v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fail("data after the object")
	}
	if j.V != 1 && j.V != stateVersion {
		return fail("version %d, want 1 or %d", j.V, stateVersion)
	}
	if j.Rounds < 0 || j.Rounds > maxSaved {
		return fail("rounds %d outside 0..%d", j.Rounds, maxSaved)
	}
	if j.V == 1 && j.Mark != (bootclock.Mark{}) {
		return fail("boot fields in a version 1 blob")
	}
	if err := j.Mark.Validate(); err != nil {
		return fail("%v", err)
	}
	// Another boot, or no boot clock: nothing tells a step.
	step, _ := j.Mark.Step(at.mark)
	s := saved{hist: history{}, rounds: j.Rounds}
	for name, ts := range j.Actions {
		id, ok := stepByName(name)
		if !ok || id == stepObserve {
			return fail("unknown step %q", name)
		}
		if len(ts) > maxSaved {
			return fail("%d records for %s, at most %d", len(ts), name, maxSaved)
		}
		for _, ms := range ts {
			if ms <= 0 {
				return fail("time %d for %s", ms, name)
			}
			t := time.UnixMilli(ms).UTC().Add(step)
			if t.After(at.now) {
				t = at.now
			}
			s.hist.add(id, t)
		}
	}
	for _, f := range []struct {
		ms  int64
		dst *time.Time
	}{{j.NextRound, &s.nextRound}, {j.ParkedUntil, &s.parkedUntil}} {
		if f.ms < 0 {
			return fail("negative time %d", f.ms)
		}
		if f.ms > 0 {
			*f.dst = time.UnixMilli(f.ms).UTC().Add(step)
		}
	}
	s.hist.prune(at.now)
	return s, nil
}
