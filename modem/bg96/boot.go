package bg96

import (
	"errors"
	"fmt"
	"strings"

	"cellagent/modem/at"
)

// bootState is where WaitReady stands with a modem that may be starting.
//
//	silent   no start-up URC seen: the modem may have booted before we
//	         came, so an OK to AT means ready (action: poll)
//	polled   silent, and AT went unanswered (action: wait for a URC or
//	         the next poll)
//	booting  a start-up URC went by: OK to AT no longer counts, since a
//	         booting BG96 answers AT before its SIM is ready (action: wait)
//	ready    +CPIN: READY and +QIND: SMS DONE seen, or AT answered while
//	         silent (action: done)
//	failed   the SIM wants a PIN or PUK, or the port closed (action: fail)
type bootState int

const (
	bootSilent bootState = iota
	bootPolled
	bootBooting
	bootReady
	bootFailed
)

// boot is the state and what it has seen. It is a value: next returns a
// new one and never acts, so every path is a table test away.
type boot struct {
	state          bootState
	rdy, cpin, sms bool // start-up URCs seen
	err            error
}

type bootEventKind int

const (
	bootURC  bootEventKind = iota // a start-up URC (line)
	bootAT                        // the answer to a polled AT (err)
	bootTick                      // the wait between polls ended
)

type bootEvent struct {
	kind bootEventKind
	line string
	err  error
}

// bootAction is what the loop does in a state.
type bootAction int

const (
	bootPoll bootAction = iota
	bootWait
	bootDone
	bootFail
)

func (b boot) action() bootAction {
	switch b.state {
	case bootSilent:
		return bootPoll
	case bootReady:
		return bootDone
	case bootFailed:
		return bootFail
	}
	return bootWait
}

// next is the transition function.
func (b boot) next(ev bootEvent) boot {
	if b.state == bootReady || b.state == bootFailed {
		return b
	}
	switch ev.kind {
	case bootURC:
		if err := b.take(ev.line); err != nil {
			b.state, b.err = bootFailed, err
			return b
		}
		switch {
		case b.cpin && b.sms:
			b.state = bootReady
		case b.rdy || b.cpin || b.sms:
			// +CPIN: READY and SMS DONE only follow RDY, so either
			// suffices when the watch was armed after RDY had gone by.
			b.state = bootBooting
		case b.state == bootPolled:
			// Another URC woke the wait: poll again at once.
			b.state = bootSilent
		}
	case bootAT:
		switch {
		case errors.Is(ev.err, at.ErrClosed):
			b.state, b.err = bootFailed, fmt.Errorf("bg96: waiting for the modem: %w", ev.err)
		case b.state == bootSilent && ev.err == nil:
			b.state = bootReady
		case b.state == bootSilent:
			b.state = bootPolled
		}
	case bootTick:
		if b.state == bootPolled {
			b.state = bootSilent
		}
	}
	return b
}

// take records a start-up URC; an error is a SIM no wait can unlock.
func (b *boot) take(line string) error {
	l := strings.TrimSpace(line)
	switch {
	case l == "RDY":
		b.rdy = true
	case strings.HasPrefix(l, "+QIND:"):
		if f, err := fields(l, "+QIND:"); err == nil && strings.EqualFold(f[0], "SMS DONE") {
			b.sms = true
		}
	case strings.HasPrefix(l, "+CPIN:"):
		st, err := ParseCPIN(l)
		if err != nil {
			return fmt.Errorf("bg96: waiting for the modem: %w", err)
		}
		if st == PINReady {
			b.cpin = true
		} else if strings.Contains(string(st), "PIN") || strings.Contains(string(st), "PUK") {
			return fmt.Errorf("bg96: SIM is locked (%s); enter or disable the PIN", st)
		}
	}
	return nil
}

// String says what was seen, for the error when the wait runs out.
func (b boot) String() string {
	var have, want []string
	for _, u := range []struct {
		ok   bool
		name string
	}{{b.rdy, "RDY"}, {b.cpin, "+CPIN: READY"}, {b.sms, "+QIND: SMS DONE"}} {
		if u.ok {
			have = append(have, u.name)
		} else {
			want = append(want, u.name)
		}
	}
	if len(have) == 0 {
		return "no answer to AT and no start-up URC"
	}
	return "saw " + strings.Join(have, ", ") + "; still waiting for " + strings.Join(want, ", ")
}
