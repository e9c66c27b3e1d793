// Package ratelimit caps outgoing SMS, which cost money and can be abused
// through the agent's command channel.
//
// Budgets are sliding-window logs: the limiter remembers when each SMS was
// allowed and refuses a request if any window (e.g. 5 per minute, 30 per
// hour, 100 per day), globally or for the destination, would then hold more
// than its maximum. A log is exact — "never more than 100 in any 24 hours",
// which is what a cost cap means — where fixed windows let twice the budget
// through across a window boundary and a token bucket sized for a day lets
// the whole day's budget out in one burst right after the bucket refills.
// The cost is memory: one entry per allowed request in the longest window,
// bounded because Config.Global must be set and must cover the longest
// per-destination period, so the number of entries (and of destinations
// tracked) never exceeds the global budget.
//
// State survives restarts through Snapshot and Restore (the agent keeps the
// blob in its store), so a crash loop or a reboot does not reset the budget.
package ratelimit

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"cellagent/agent/bootclock"
	"cellagent/modem/clock"
)

// ErrLimited matches every *LimitError with errors.Is.
var ErrLimited = errors.New("rate limited")

// Window is a budget: at most Max SMS in any Period.
type Window struct {
	Period time.Duration
	Max    int
}

func (w Window) String() string {
	per := "per " + w.Period.String()
	switch w.Period {
	case time.Minute:
		per = "per minute"
	case time.Hour:
		per = "per hour"
	case 24 * time.Hour:
		per = "per day"
	}
	return fmt.Sprintf("%d SMS %s", w.Max, per)
}

// Config holds the budgets. Global is required; PerDest applies to each
// destination separately and may be empty.
type Config struct {
	Global  []Window
	PerDest []Window
}

// LimitError says which budget a request hit and when to retry.
type LimitError struct {
	Scope      string // "global" or "destination"
	Dest       string // the destination asked for
	Window     Window
	Used       int           // SMS already counted in the window
	Requested  int           // SMS in this request (parts of a long message)
	RetryAfter time.Duration // 0: the request exceeds the budget on its own and can never pass
}

func (e *LimitError) Error() string {
	who := "the global limit"
	if e.Scope == "destination" {
		who = fmt.Sprintf("the limit for %s", e.Dest)
	}
	if e.RetryAfter == 0 {
		return fmt.Sprintf("rate limit: %d SMS exceed %s of %s on their own; this message can never be sent",
			e.Requested, who, e.Window)
	}
	return fmt.Sprintf("rate limit: %d more SMS would exceed %s of %s (%d used); retry in %s",
		e.Requested, who, e.Window, e.Used, e.RetryAfter.Round(time.Second))
}

// Unwrap lets errors.Is(err, ErrLimited) match.
func (e *LimitError) Unwrap() error { return ErrLimited }

// Limiter enforces a Config. It is safe for concurrent use.
type Limiter struct {
	mu       sync.Mutex
	cfg      Config
	clock    clock.Clock
	keep     time.Duration // longest global period
	keepDest time.Duration // longest per-destination period
	global   Log
	dests    map[string]Log
	// boot dates snapshots on the boot clock (bootclock.System if nil).
	boot bootclock.Source
}

// New checks cfg and returns a limiter with empty logs whose windows
// are measured on c (clock.System when nil).
func New(cfg Config, c clock.Clock) (*Limiter, error) {
	if c == nil {
		c = clock.System
	}
	if len(cfg.Global) == 0 {
		return nil, errors.New("ratelimit: no global limit configured; SMS cost money, set at least one")
	}
	l := &Limiter{cfg: cfg, clock: c, dests: map[string]Log{}}
	for scope, ws := range map[string][]Window{"global": cfg.Global, "per-destination": cfg.PerDest} {
		for _, w := range ws {
			if w.Period <= 0 || w.Max < 1 {
				return nil, fmt.Errorf("ratelimit: %s limit %d per %s: want a positive count and period", scope, w.Max, w.Period)
			}
		}
	}
	for _, w := range cfg.Global {
		l.keep = max(l.keep, w.Period)
	}
	for _, w := range cfg.PerDest {
		l.keepDest = max(l.keepDest, w.Period)
	}
	if l.keepDest > l.keep {
		return nil, fmt.Errorf("ratelimit: per-destination period %s is longer than the longest global period %s; add a global limit covering it so memory stays bounded",
			l.keepDest, l.keep)
	}
	return l, nil
}

// Allow charges n SMS (the parts of one message) to the global budget and to
// dest's, or charges nothing and returns a *LimitError naming the first
// budget that would be exceeded.
func (l *Limiter) Allow(dest string, n int) error {
	if dest == "" {
		return errors.New("ratelimit: empty destination")
	}
	if n < 1 {
		return fmt.Errorf("ratelimit: %d SMS requested, want at least 1", n)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	l.prune(now)
	if err := check(l.global, l.cfg.Global, now, n); err != nil {
		err.Scope, err.Dest = "global", dest
		return err
	}
	if err := check(l.dests[dest], l.cfg.PerDest, now, n); err != nil {
		err.Scope, err.Dest = "destination", dest
		return err
	}
	l.global = l.global.Add(now, n)
	if len(l.cfg.PerDest) > 0 {
		l.dests[dest] = l.dests[dest].Add(now, n)
	}
	return nil
}

// check returns the first window in ws that n more SMS would overflow.
func check(log Log, ws []Window, now time.Time, n int) *LimitError {
	for _, w := range ws {
		ok, used, free := log.Fit(w, now, n)
		if ok {
			continue
		}
		le := &LimitError{Window: w, Used: used, Requested: n}
		if !free.IsZero() {
			le.RetryAfter = max(free.Sub(now), time.Nanosecond)
		}
		return le
	}
	return nil
}

func (l *Limiter) prune(now time.Time) {
	l.global = l.global.Expire(now.Add(-l.keep))
	for d, log := range l.dests {
		if log = log.Expire(now.Add(-l.keepDest)); len(log) == 0 {
			delete(l.dests, d)
		} else {
			l.dests[d] = log
		}
	}
}

// snapshot is the saved state. Version 1 kept one {"t","n"} object per
// charge, some 32 bytes each, so a day's log under a high per_day outgrew
// the store's payload limit (64 KiB at about 2,000 SMS) and every later
// save failed. Version 2 writes each log as a flat list of pairs: the
// first the second (unix) the charge falls in, the others the seconds
// since the previous pair, each followed by the SMS charged in that
// second. Times are rounded up to the second, which keeps a charge in its
// windows at most a second longer: never less than charged, so never more
// than the budget after a restore. Restore reads both versions.
type snapshot struct {
	Version int                        `json:"v"`
	Global  json.RawMessage            `json:"global"`
	Dests   map[string]json.RawMessage `json:"dests,omitempty"`
	// Mark, absent from older snapshots, dates the snapshot on the boot
	// clock too, so that Restore can tell a step of the wall clock.
	bootclock.Mark
}

type snapEntry struct {
	At int64 `json:"t"` // unix nanoseconds
	N  int   `json:"n"`
}

const (
	snapshotV1      = 1
	snapshotVersion = 2
)

// Snapshot encodes what has been charged within the budgets' windows. Save
// it durably after each successful Allow, before sending: a crash then
// over-counts one message rather than forgetting it.
func (l *Limiter) Snapshot() ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	l.prune(now)
	s := snapshot{Version: snapshotVersion, Global: toSnap(l.global, now), Dests: map[string]json.RawMessage{}, Mark: bootclock.Read(now, l.boot)}
	for d, log := range l.dests {
		s.Dests[d] = toSnap(log, now)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("ratelimit: snapshot: %w", err)
	}
	return b, nil
}

// toSnap encodes a log in the version 2 form, each entry dated by its
// distance from now on the wall clock now reads: a step of the wall clock
// since the entry was charged is not in the monotonic reading the
// distance is measured on.
func toSnap(log Log, now time.Time) json.RawMessage {
	type pair struct {
		sec int64
		n   int
	}
	var ps []pair
	for _, e := range log {
		at := now.Add(e.At.Sub(now))
		sec := at.Unix()
		if at.Nanosecond() > 0 {
			sec++
		}
		if k := len(ps) - 1; k >= 0 && ps[k].sec == sec {
			ps[k].n += e.N
			continue
		}
		ps = append(ps, pair{sec, e.N})
	}
	b := []byte{'['}
	var last int64 // the first pair is written as seconds since the epoch
	for i, p := range ps {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, p.sec-last, 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(p.n), 10)
		last = p.sec
	}
	return append(b, ']')
}

// Restore replaces the limiter's state with a Snapshot, possibly taken
// under another Config: entries are simply counted against the current
// budgets. A snapshot of this boot is corrected for a step of the wall
// clock since (a step forward would free the budgets, one back hold
// them for as long); one of an earlier boot cannot be, and its entries
// dated in the future count as charged now. A malformed snapshot is an
// error and leaves the state unchanged.
func (l *Limiter) Restore(b []byte) error {
	var s snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("ratelimit: restore: %w", err)
	}
	if s.Version != snapshotV1 && s.Version != snapshotVersion {
		return fmt.Errorf("ratelimit: restore: snapshot version %d, want %d or %d", s.Version, snapshotV1, snapshotVersion)
	}
	if err := s.Mark.Validate(); err != nil {
		return fmt.Errorf("ratelimit: restore: %w", err)
	}
	now := l.clock.Now()
	// Another boot, or no boot clock: nothing tells a step.
	step, _ := s.Mark.Step(bootclock.Read(now, l.boot))
	global, err := fromSnap(s.Version, s.Global, "global", step, now)
	if err != nil {
		return err
	}
	dests := map[string]Log{}
	for d, es := range s.Dests {
		if d == "" {
			return errors.New("ratelimit: restore: empty destination")
		}
		if dests[d], err = fromSnap(s.Version, es, d, step, now); err != nil {
			return err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.global, l.dests = global, dests
	l.prune(now)
	return nil
}

func fromSnap(version int, raw json.RawMessage, scope string, step time.Duration, now time.Time) (Log, error) {
	es, err := decodeEntries(version, raw)
	if err != nil {
		return nil, fmt.Errorf("ratelimit: restore: %s: %w", scope, err)
	}
	var log Log
	for _, e := range es {
		if e.N < 1 {
			return nil, fmt.Errorf("ratelimit: restore: %s entry with count %d", scope, e.N)
		}
		at := e.At.Add(step)
		if at.After(now) {
			at = now
		}
		log = log.Add(at, e.N)
	}
	return log, nil
}

// decodeEntries reads one log of either snapshot version.
func decodeEntries(version int, raw json.RawMessage) ([]Entry, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	if version == snapshotV1 {
		var es []snapEntry
		if err := json.Unmarshal(raw, &es); err != nil {
			return nil, err
		}
		out := make([]Entry, len(es))
		for i, e := range es {
			out[i] = Entry{At: time.Unix(0, e.At), N: e.N}
		}
		return out, nil
	}
	var ns []int64
	if err := json.Unmarshal(raw, &ns); err != nil {
		return nil, err
	}
	if len(ns)%2 != 0 {
		return nil, fmt.Errorf("%d numbers, want second and count pairs", len(ns))
	}
	out := make([]Entry, 0, len(ns)/2)
	var sec int64
	for i := 0; i < len(ns); i += 2 {
		d, n := ns[i], ns[i+1]
		if i > 0 && (d < 0 || sec > maxSnapSecond-d) {
			return nil, fmt.Errorf("pair %d: %d seconds after %d", i/2, d, sec)
		}
		if i == 0 {
			sec = d
		} else {
			sec += d
		}
		if sec < -maxSnapSecond || sec > maxSnapSecond {
			return nil, fmt.Errorf("pair %d: second %d out of range", i/2, sec)
		}
		if n < 1 || n > math.MaxInt32 {
			return nil, fmt.Errorf("pair %d: count %d", i/2, n)
		}
		out = append(out, Entry{At: time.Unix(sec, 0), N: int(n)})
	}
	return out, nil
}

// maxSnapSecond bounds the seconds a snapshot may carry to what a
// time.Duration spans from the epoch, far beyond any window.
const maxSnapSecond = math.MaxInt64 / int64(time.Second)
