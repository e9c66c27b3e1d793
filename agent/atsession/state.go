package atsession

import (
	"time"

	"cellagent/modem/clock"
)

// phase is where the link stands in the modem session's life.
//
//	opening   an attempt is under way: open the port, wait for the
//	          modem, run the init script
//	up        a session is handed out
//	retrying  the last attempt failed: wait out the back-off
//	settling  a session just ended: give a port that vanished with USB
//	          re-enumeration a moment to come back before opening it
type phase int

const (
	phaseOpening phase = iota
	phaseUp
	phaseRetrying
	phaseSettling
)

// state is a phase with what the back-off and the reports need. It is a
// value; next returns a new one and never acts.
type state struct {
	phase phase
	fails int // attempts failed since the last session
	// reported: this outage has been reported; further failed attempts
	// are not news, so a modem unplugged for a day does not log
	// thousands of identical lines.
	reported bool
}

type event int

const (
	evOpened event = iota // an attempt gave a session
	evFailed              // an attempt failed
	evEnded               // the session's port closed
	evWaited              // a back-off or settling wait ended
)

// action is what the loop does on entering the new state.
type action struct {
	// report: tell OnChange (and log a warning) that the modem is down;
	// otherwise a failed attempt is only a debug line.
	report bool
	// wait before the next attempt, before jitter; zero: none.
	wait time.Duration
}

// next is the transition function; min and max bound the back-off.
func (s state) next(ev event, minWait, maxWait time.Duration) (state, action) {
	switch {
	case s.phase == phaseOpening && ev == evOpened:
		return state{phase: phaseUp}, action{}
	case s.phase == phaseOpening && ev == evFailed:
		n := state{phase: phaseRetrying, fails: s.fails + 1, reported: true}
		return n, action{report: !s.reported, wait: clock.Backoff(minWait, maxWait, n.fails)}
	case s.phase == phaseUp && ev == evEnded:
		// The end is this outage's report: failed reopens are not news.
		return state{phase: phaseSettling, reported: true}, action{report: true, wait: minWait}
	case (s.phase == phaseRetrying || s.phase == phaseSettling) && ev == evWaited:
		s.phase = phaseOpening
		return s, action{}
	}
	// No other event can happen in these phases: the loop feeds them in
	// order. Keeping the state makes a mistake there harmless.
	return s, action{}
}
