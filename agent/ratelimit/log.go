package ratelimit

import (
	"slices"
	"time"
)

// Entry is one charge: N units (SMS, ladder steps) at At.
type Entry struct {
	At time.Time
	N  int
}

// Log is a sliding-window log, sorted by time: the one budget counter of
// the agent, behind both the SMS limits and the recovery ladder's step
// budgets. Its methods return the updated log, as append does.
type Log []Entry

// Add charges n at t, keeping the log sorted even if the clock stepped back.
func (l Log) Add(t time.Time, n int) Log {
	i := len(l)
	for i > 0 && l[i-1].At.After(t) {
		i--
	}
	return slices.Insert(l, i, Entry{At: t, N: n})
}

// Remove takes back one charge made at t, if there is one.
func (l Log) Remove(t time.Time) Log {
	if i := slices.IndexFunc(l, func(e Entry) bool { return e.At.Equal(t) }); i >= 0 {
		return slices.Delete(l, i, i+1)
	}
	return l
}

// Expire drops the charges at or before t.
func (l Log) Expire(t time.Time) Log {
	i := 0
	for i < len(l) && !l[i].At.After(t) {
		i++
	}
	return l[i:]
}

// Since sums the charges after t.
func (l Log) Since(t time.Time) int {
	n := 0
	for _, e := range l {
		if e.At.After(t) {
			n += e.N
		}
	}
	return n
}

// Fit tells whether n more fit into w at now, how many w holds already,
// and if they do not fit, when they will: the moment enough of the oldest
// charges have left the window. free is zero when n exceeds w.Max, which
// no wait helps.
func (l Log) Fit(w Window, now time.Time, n int) (ok bool, used int, free time.Time) {
	from := now.Add(-w.Period)
	used = l.Since(from)
	if used+n <= w.Max {
		return true, used, time.Time{}
	}
	if n > w.Max {
		return false, used, time.Time{}
	}
	need := used + n - w.Max
	for _, e := range l {
		if !e.At.After(from) {
			continue
		}
		if need -= e.N; need <= 0 {
			return false, used, e.At.Add(w.Period)
		}
	}
	return false, used, time.Time{}
}
