package bearer

import (
	"time"

	"cellagent/modem/clock"
)

// State is the bearer's lifecycle state.
type State string

// States. A ppp bearer goes off → dialing → connected (pppd runs) → up
// (the interface is up with an address); a failure goes to backoff, a
// fault no retry can fix (a wrong APN, no kernel PPP) or an exhausted
// quota to blocked. An external bearer is only ever watching, up or down.
const (
	StateOff       State = "off"
	StateDialing   State = "dialing"
	StateConnected State = "connected"
	StateUp        State = "up"
	StateBackoff   State = "backoff"
	StateBlocked   State = "blocked"
	StateDown      State = "down"
)

// eventKind is what happened.
type eventKind int

const (
	evStart    eventKind = iota // the loop starts
	evDialed                    // CONNECT: pppd may start
	evDialFail                  // NO CARRIER, ERROR or no answer on the data port
	evExit                      // pppd exited
	evIfUp                      // the kernel reports the interface up with an address
	evIfDown                    // the interface is gone or down
	evTimer                     // the back-off is over
	evRedial                    // the supervisor's redial step
	evBlock                     // quota exhausted: no dialling
	evUnblock                   // quota back (fault false), or the configuration reloaded (fault true)
)

// event carries what the loop learnt.
type event struct {
	kind eventKind
	// why is the failure: pppd's exit, the dial's answer; cause the
	// modem's +CEER.
	why, cause string
	// fault: no retry can help (wrong APN, no kernel PPP); the bearer
	// stays blocked until the configuration is reloaded.
	fault bool
}

// actionKind is what the loop must do.
type actionKind int

const (
	actDial   actionKind = iota // hang up any call, dial, and start pppd on CONNECT
	actStop                     // stop pppd and hang up
	actArm                      // start the back-off timer with delay
	actRecord                   // record a failure (why, cause) and tell the operator
	actAlert                    // a fault: one alert, no more dialling
)

type action struct {
	kind  actionKind
	delay time.Duration
	why   string
	cause string
}

// machine is the bearer's state; transition is its only writer.
type machine struct {
	ppp      bool // mode ppp; otherwise the bearer is watched only
	state    State
	failures int    // failures since the bearer was last up
	blocked  string // why it may not dial
	fault    bool   // blocked by a fault, not by the quota
	min, max time.Duration
}

func (m machine) backoff() time.Duration { return clock.Backoff(m.min, m.max, m.failures) }

// transition is the bearer's lifecycle as a pure function: the next state
// and the actions the loop performs, in order.
func transition(m machine, e event) (machine, []action) {
	if !m.ppp {
		return watch(m, e)
	}
	switch e.kind {
	case evStart:
		if m.state == StateOff {
			m.state = StateDialing
			return m, []action{{kind: actDial}}
		}
	case evDialed:
		if m.state == StateDialing {
			m.state = StateConnected
		}
	case evDialFail, evExit:
		if m.state != StateDialing && m.state != StateConnected && m.state != StateUp {
			return m, nil
		}
		return m.failed(e)
	case evIfUp:
		if m.state == StateConnected || m.state == StateDialing {
			m.state, m.failures = StateUp, 0
		}
	case evIfDown:
		// pppd notices a dead link itself (LCP echoes) and exits; its exit
		// is the event that redials, so a flapping link is not dialled
		// twice.
		if m.state == StateUp {
			m.state = StateConnected
		}
	case evTimer:
		if m.state == StateBackoff {
			m.state = StateDialing
			return m, []action{{kind: actDial}}
		}
	case evRedial:
		switch m.state {
		case StateBlocked, StateOff:
			return m, nil
		}
		m.state, m.failures = StateDialing, 0
		return m, []action{{kind: actStop}, {kind: actDial}}
	case evBlock:
		if m.state == StateBlocked {
			return m, nil
		}
		m.state, m.blocked, m.fault = StateBlocked, e.why, false
		return m, []action{{kind: actStop}}
	case evUnblock:
		// e.fault selects what is lifted: a reload lifts a fault, a
		// quota back lifts the quota block, neither the other.
		if m.state != StateBlocked || e.fault != m.fault {
			return m, nil
		}
		m.state, m.blocked, m.fault, m.failures = StateDialing, "", false, 0
		return m, []action{{kind: actDial}}
	}
	return m, nil
}

// failed handles a dial that failed or a pppd that exited.
func (m machine) failed(e event) (machine, []action) {
	rec := action{kind: actRecord, why: e.why, cause: e.cause}
	if e.fault {
		m.state, m.blocked, m.fault = StateBlocked, e.why, true
		if e.cause != "" {
			m.blocked += " (" + e.cause + ")"
		}
		return m, []action{{kind: actStop}, rec, {kind: actAlert, why: m.blocked}}
	}
	m.failures++
	m.state = StateBackoff
	return m, []action{{kind: actStop}, rec, {kind: actArm, delay: m.backoff()}}
}

// watch is the machine of an external bearer: the kernel's word only.
func watch(m machine, e event) (machine, []action) {
	switch e.kind {
	case evStart:
		m.state = StateDown
	case evIfUp:
		m.state = StateUp
	case evIfDown:
		was := m.state
		m.state = StateDown
		if was == StateUp {
			return m, []action{{kind: actRecord, why: e.why}}
		}
	}
	return m, nil
}
