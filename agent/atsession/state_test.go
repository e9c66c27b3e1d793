package atsession

import (
	"errors"
	"testing"
	"time"
)

// TestStateTransitions runs the session machine through event sequences,
// one second apart: the steps of an attempt, one report per outage, the
// back-off doubling per failed attempt up to its cap and starting over
// after a session, the settling wait after an end or a restart, the stop
// from any phase.
func TestStateTransitions(t *testing.T) {
	const lo, hi = time.Second, 4 * time.Second
	t0 := time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC)
	at := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	errPort, errEnd := errors.New("no port"), errors.New("session 1 ended")
	var (
		start  = event{kind: evStart}
		opened = event{kind: evPortOpened}
		ready  = event{kind: evReady}
		inited = event{kind: evInitialised}
		failed = event{kind: evFailed, err: errPort}
		ended  = event{kind: evEnded, err: errEnd}
		restrt = event{kind: evRestart, err: errEnd}
		waited = event{kind: evWaited}
		stop   = event{kind: evStop}
	)
	attempt := []event{start, opened, ready, inited}
	seq := func(evs ...[]event) []event {
		var all []event
		for _, e := range evs {
			all = append(all, e...)
		}
		return all
	}
	for _, c := range []struct {
		name   string
		events []event
		want   state
		act    action // of the last event
	}{
		{"not started", nil, state{phase: Closed}, action{}},
		{"start opens the port", []event{start}, state{phase: Opening, since: at(1)}, action{do: doOpen}},
		{"port open: the modem boots", []event{start, opened}, state{phase: Booting, since: at(2)}, action{do: doWaitReady}},
		{"modem ready: initialise", []event{start, opened, ready}, state{phase: Initialising, since: at(3)}, action{do: doInitialise}},
		{"initialised: up", attempt, state{phase: Up, since: at(4)}, action{do: doHold}},
		{"the port fails to open: reported", []event{start, failed},
			state{Retrying, at(2), errPort, 1, true}, action{do: doWait, report: true, wait: lo}},
		{"the boot fails: reported", []event{start, opened, failed},
			state{Retrying, at(3), errPort, 1, true}, action{do: doWait, report: true, wait: lo}},
		{"the init fails: reported", []event{start, opened, ready, failed},
			state{Retrying, at(4), errPort, 1, true}, action{do: doWait, report: true, wait: lo}},
		{"then the next attempt, the error kept", []event{start, failed, waited},
			state{Opening, at(3), errPort, 1, true}, action{do: doOpen}},
		{"second failure is not news", []event{start, failed, waited, opened, failed},
			state{Retrying, at(5), errPort, 2, true}, action{do: doWait, wait: 2 * lo}},
		{"back-off capped", []event{start, failed, waited, failed, waited, failed, waited, failed, waited, failed},
			state{Retrying, at(10), errPort, 5, true}, action{do: doWait, wait: hi}},
		{"a session clears the outage", seq([]event{start, failed, waited, failed, waited}, attempt[1:]),
			state{phase: Up, since: at(8)}, action{do: doHold}},
		{"an end is reported, then settles", seq(attempt, []event{ended}),
			state{Settling, at(5), errEnd, 0, true}, action{do: doWait, report: true, wait: lo}},
		{"a restart too", seq(attempt, []event{restrt}),
			state{Settling, at(5), errEnd, 0, true}, action{do: doWait, report: true, wait: lo}},
		{"settled: open again", seq(attempt, []event{ended, waited}),
			state{Opening, at(6), errEnd, 0, true}, action{do: doOpen}},
		{"reopen failing after an end is not news", seq(attempt, []event{ended, waited, failed}),
			state{Retrying, at(7), errPort, 1, true}, action{do: doWait, wait: lo}},
		{"after an outage, a new one is reported again", seq([]event{start, failed, waited}, attempt[1:], []event{ended}),
			state{Settling, at(7), errEnd, 0, true}, action{do: doWait, report: true, wait: lo}},
		{"stop while booting closes", []event{start, opened, stop}, state{phase: Closed, since: at(3)}, action{do: doClose}},
		{"stop while up closes", seq(attempt, []event{stop}), state{phase: Closed, since: at(5)}, action{do: doClose}},
		{"stop while retrying closes, the error kept", []event{start, failed, stop},
			state{Closed, at(3), errPort, 1, true}, action{do: doClose}},
		{"stop when closed does nothing", []event{stop}, state{phase: Closed}, action{}},
		{"events out of order change nothing", []event{start, waited, ended, inited}, state{phase: Opening, since: at(1)}, action{}},
		{"the end of a session not up changes nothing", []event{start, opened, ended}, state{phase: Booting, since: at(2)}, action{}},
	} {
		s := state{phase: Closed}
		var a action
		for i, ev := range c.events {
			s, a = s.next(ev, at(i+1), backoff{lo, hi})
		}
		if s != c.want || a != c.act {
			t.Errorf("%s: state %+v action %+v, want %+v %+v", c.name, s, a, c.want, c.act)
		}
	}
}
