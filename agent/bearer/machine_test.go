package bearer

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func kinds(acts []action) []actionKind {
	var out []actionKind
	for _, a := range acts {
		out = append(out, a.kind)
	}
	return out
}

func TestTransitionPPP(t *testing.T) {
	base := machine{ppp: true, min: 10 * time.Second, max: 80 * time.Second}
	in := func(s State) machine { m := base; m.state = s; return m }
	for _, c := range []struct {
		name  string
		from  machine
		ev    event
		to    State
		acts  []actionKind
		delay time.Duration
	}{
		{"start dials", in(StateOff), event{kind: evStart}, StateDialing, []actionKind{actDial}, 0},
		{"CONNECT", in(StateDialing), event{kind: evDialed}, StateConnected, nil, 0},
		{"interface up", in(StateConnected), event{kind: evIfUp}, StateUp, nil, 0},
		{"no carrier backs off", in(StateDialing), event{kind: evDialFail, why: "dial: NO CARRIER"}, StateBackoff, []actionKind{actStop, actRecord, actArm}, 10 * time.Second},
		{"pppd exit backs off", in(StateUp), event{kind: evExit, why: "pppd exit 16"}, StateBackoff, []actionKind{actStop, actRecord, actArm}, 10 * time.Second},
		{"wrong APN blocks with one alert", in(StateDialing), event{kind: evDialFail, cause: "Missing or unknown APN", fault: true}, StateBlocked, []actionKind{actStop, actRecord, actAlert}, 0},
		{"no kernel PPP blocks", in(StateConnected), event{kind: evExit, why: "pppd exit 4", fault: true}, StateBlocked, []actionKind{actStop, actRecord, actAlert}, 0},
		{"timer redials", in(StateBackoff), event{kind: evTimer}, StateDialing, []actionKind{actDial}, 0},
		{"timer while up is stale", in(StateUp), event{kind: evTimer}, StateUp, nil, 0},
		{"exit while backing off is stale", in(StateBackoff), event{kind: evExit}, StateBackoff, nil, 0},
		{"redial step", in(StateUp), event{kind: evRedial}, StateDialing, []actionKind{actStop, actDial}, 0},
		{"redial while blocked does nothing", in(StateBlocked), event{kind: evRedial}, StateBlocked, nil, 0},
		{"quota exhausted hangs up", in(StateUp), event{kind: evBlock, why: "data quota exhausted"}, StateBlocked, []actionKind{actStop}, 0},
		{"quota back dials", in(StateBlocked), event{kind: evUnblock}, StateDialing, []actionKind{actDial}, 0},
		{"unblock when not blocked", in(StateUp), event{kind: evUnblock}, StateUp, nil, 0},
		{"reload clears a fault", machine{ppp: true, state: StateBlocked, fault: true, blocked: "x"}, event{kind: evUnblock, fault: true}, StateDialing, []actionKind{actDial}, 0},
		{"quota back leaves a fault", machine{ppp: true, state: StateBlocked, fault: true, blocked: "x"}, event{kind: evUnblock}, StateBlocked, nil, 0},
		{"reload leaves the quota block", in(StateBlocked), event{kind: evUnblock, fault: true}, StateBlocked, nil, 0},
		{"interface down waits for pppd", in(StateUp), event{kind: evIfDown}, StateConnected, nil, 0},
	} {
		m, acts := transition(c.from, c.ev)
		if m.state != c.to || !slices.Equal(kinds(acts), c.acts) {
			t.Errorf("%s: %s → %s %v, want %s %v", c.name, c.from.state, m.state, kinds(acts), c.to, c.acts)
		}
		for _, a := range acts {
			if a.kind == actArm && a.delay != c.delay {
				t.Errorf("%s: back-off %s, want %s", c.name, a.delay, c.delay)
			}
		}
	}
}

// Failures double the back-off up to its maximum; being up resets it.
func TestTransitionBackoff(t *testing.T) {
	m := machine{ppp: true, state: StateOff, min: 10 * time.Second, max: 60 * time.Second}
	m, _ = transition(m, event{kind: evStart})
	var delays []time.Duration
	for range 5 {
		var acts []action
		m, acts = transition(m, event{kind: evDialFail})
		delays = append(delays, acts[2].delay)
		m, _ = transition(m, event{kind: evTimer})
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 60 * time.Second, 60 * time.Second}
	if !slices.Equal(delays, want) {
		t.Errorf("back-offs %v, want %v", delays, want)
	}
	m, _ = transition(m, event{kind: evDialed})
	m, _ = transition(m, event{kind: evIfUp})
	if m.failures != 0 {
		t.Errorf("failures after up: %d", m.failures)
	}
	// A fault is remembered as one; the quota is not.
	m, _ = transition(m, event{kind: evExit, fault: true, why: "pppd exit 4"})
	if !m.fault || m.blocked != "pppd exit 4" {
		t.Errorf("fault: %+v", m)
	}
}

func TestTransitionExternal(t *testing.T) {
	m := machine{state: StateOff}
	m, _ = transition(m, event{kind: evStart})
	if m.state != StateDown {
		t.Fatalf("external starts %s", m.state)
	}
	m, acts := transition(m, event{kind: evIfUp})
	if m.state != StateUp || acts != nil {
		t.Errorf("up: %s %v", m.state, acts)
	}
	m, acts = transition(m, event{kind: evIfDown, why: "wwan0 went down"})
	if m.state != StateDown || !slices.Equal(kinds(acts), []actionKind{actRecord}) {
		t.Errorf("down: %s %v", m.state, acts)
	}
	for _, k := range []eventKind{evRedial, evTimer, evBlock, evDialFail, evExit} {
		if n, acts := transition(m, event{kind: k}); n.state != StateDown || acts != nil {
			t.Errorf("external took event %d: %s %v", k, n.state, acts)
		}
	}
}

func TestPPPLogReadsAddresses(t *testing.T) {
	var l pppLog
	l.read(strings.NewReader("local  IP address 10.64.12.7\nprimary   DNS address 10.74.210.210\nsecondary DNS address bogus\nCouldn't set tty to PPP discipline: Invalid argument\n"), func(string) {})
	dns, last := l.snapshot()
	if l.local != "10.64.12.7" || !slices.Equal(dns, []string{"10.74.210.210"}) || !strings.HasPrefix(last, "Couldn't set tty") {
		t.Errorf("local %q dns %v last %q", l.local, dns, last)
	}
}
