package atsession

import (
	"time"

	"cellagent/modem/clock"
)

// Phase is where the modem session stands in its life; see the package
// comment for the diagram.
type Phase string

// Phases.
const (
	// Closed: Run has not started, or has stopped.
	Closed Phase = "closed"
	// Opening: opening the serial port.
	Opening Phase = "opening"
	// Booting: the port is open; waiting for the modem to boot (RDY)
	// and its SIM to be ready, or for an answer to AT from a modem that
	// booted before the agent started.
	Booting Phase = "booting"
	// Initialising: the modem answers; entering the SIM PIN if asked,
	// running the init script, checking the network profile, reading the
	// identity.
	Initialising Phase = "initialising"
	// Up: a session is handed out.
	Up Phase = "up"
	// Retrying: the last attempt failed; waiting out the back-off.
	Retrying Phase = "retrying"
	// Settling: a session just ended; a port that vanished with USB
	// re-enumeration gets a moment to come back before it is opened.
	Settling Phase = "settling"
)

// state is a phase with what the back-off and the reports need. It is a
// value; next returns a new one and never acts.
type state struct {
	phase Phase
	since time.Time // when phase began
	// err is why the last attempt failed or the last session ended; it
	// stays through the attempts that follow until a session is up.
	err   error
	fails int // attempts failed since the last session
	// reported: this outage has been reported; further failed attempts
	// are not news, so a modem unplugged for a day does not log
	// thousands of identical lines.
	reported bool
}

type eventKind int

const (
	evStart       eventKind = iota // Run began
	evPortOpened                   // the port opened
	evReady                        // the modem answers (booted, or asking for its SIM PIN)
	evInitialised                  // init script and set-up done: a session
	evFailed                       // a step of the attempt failed (err)
	evEnded                        // the session's port closed (err)
	evRestart                      // the session was closed on request (err says why)
	evWaited                       // a back-off or settling wait ended
	evStop                         // Run's context ended
)

type event struct {
	kind eventKind
	err  error
}

// do is the work the loop performs on entering a state.
type do int

const (
	doNothing    do = iota
	doOpen          // open the port
	doWaitReady     // wait for the modem to boot
	doInitialise    // unlock, init script, set-up, identity
	doHold          // hand the session out until it ends
	doWait          // sleep action.wait (with jitter)
	doClose         // close whatever is open and return
)

// action is what the loop does on entering the new state.
type action struct {
	do do
	// report: tell OnChange (and log a warning) that the modem is down;
	// otherwise a failed attempt is only a debug line.
	report bool
	// wait before the next attempt, before jitter (doWait).
	wait time.Duration
}

// backoff bounds the waits between attempts.
type backoff struct{ min, max time.Duration }

// next is the transition function.
func (s state) next(ev event, now time.Time, b backoff) (state, action) {
	to := func(p Phase) state {
		n := s
		if n.phase != p {
			n.phase, n.since = p, now
		}
		return n
	}
	switch {
	case s.phase == Closed && ev.kind == evStart:
		return to(Opening), action{do: doOpen}
	case ev.kind == evStop:
		if s.phase == Closed {
			return s, action{}
		}
		return to(Closed), action{do: doClose}
	case s.phase == Opening && ev.kind == evPortOpened:
		return to(Booting), action{do: doWaitReady}
	case s.phase == Booting && ev.kind == evReady:
		return to(Initialising), action{do: doInitialise}
	case s.phase == Initialising && ev.kind == evInitialised:
		n := to(Up)
		n.err, n.fails, n.reported = nil, 0, false
		return n, action{do: doHold}
	case (s.phase == Opening || s.phase == Booting || s.phase == Initialising) && ev.kind == evFailed:
		n := to(Retrying)
		n.err, n.fails, n.reported = ev.err, s.fails+1, true
		return n, action{do: doWait, report: !s.reported, wait: clock.Backoff(b.min, b.max, n.fails)}
	case s.phase == Up && (ev.kind == evEnded || ev.kind == evRestart):
		// The end is this outage's report: failed reopens are not news.
		n := to(Settling)
		n.err, n.reported = ev.err, true
		return n, action{do: doWait, report: true, wait: b.min}
	case (s.phase == Retrying || s.phase == Settling) && ev.kind == evWaited:
		return to(Opening), action{do: doOpen}
	}
	// No other event can happen in these phases: the loop feeds only the
	// events of the action it performed. Keeping the state and doing
	// nothing makes a mistake there visible (Run returns) and harmless.
	return s, action{}
}
