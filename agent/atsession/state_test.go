package atsession

import (
	"testing"
	"time"
)

// TestStateTransitions runs the session machine through event sequences:
// one report per outage, the back-off doubling per failed attempt up to
// its cap and starting over after a session, the settling wait after an
// end.
func TestStateTransitions(t *testing.T) {
	const lo, hi = time.Second, 4 * time.Second
	for _, c := range []struct {
		name   string
		events []event
		want   state
		act    action // of the last event
	}{
		{"start", nil, state{phase: phaseOpening}, action{}},
		{"up", []event{evOpened}, state{phase: phaseUp}, action{}},
		{"first failure is reported", []event{evFailed}, state{phaseRetrying, 1, true}, action{report: true, wait: lo}},
		{"then the next attempt", []event{evFailed, evWaited}, state{phaseOpening, 1, true}, action{}},
		{"second failure is not news", []event{evFailed, evWaited, evFailed}, state{phaseRetrying, 2, true}, action{wait: 2 * lo}},
		{"back-off capped", []event{evFailed, evWaited, evFailed, evWaited, evFailed, evWaited, evFailed, evWaited, evFailed},
			state{phaseRetrying, 5, true}, action{wait: hi}},
		{"a session clears the outage", []event{evFailed, evWaited, evFailed, evWaited, evOpened}, state{phase: phaseUp}, action{}},
		{"an end is reported, then settles", []event{evOpened, evEnded}, state{phaseSettling, 0, true}, action{report: true, wait: lo}},
		{"reopen failing after an end is not news", []event{evOpened, evEnded, evWaited, evFailed}, state{phaseRetrying, 1, true}, action{wait: lo}},
		{"after an outage, a new one is reported again", []event{evFailed, evWaited, evOpened, evEnded}, state{phaseSettling, 0, true}, action{report: true, wait: lo}},
		{"events out of order change nothing", []event{evWaited, evEnded}, state{phase: phaseOpening}, action{}},
	} {
		var s state
		var a action
		for _, ev := range c.events {
			s, a = s.next(ev, lo, hi)
		}
		if s != c.want || a != c.act {
			t.Errorf("%s: state %+v action %+v, want %+v %+v", c.name, s, a, c.want, c.act)
		}
	}
}
