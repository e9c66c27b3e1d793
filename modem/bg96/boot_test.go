package bg96

import (
	"errors"
	"strings"
	"testing"

	"cellagent/modem/at"
)

// TestBootTransitions walks the start-up machine through event sequences
// and checks the state, the action and the error it ends with.
func TestBootTransitions(t *testing.T) {
	urc := func(l string) bootEvent { return bootEvent{kind: bootURC, line: l} }
	ok := bootEvent{kind: bootAT}
	timeout := bootEvent{kind: bootAT, err: at.ErrTimeout}
	closed := bootEvent{kind: bootAT, err: at.ErrClosed}
	tick := bootEvent{kind: bootTick}
	for _, c := range []struct {
		name    string
		events  []bootEvent
		state   bootState
		action  bootAction
		wantErr string
	}{
		{"start: poll", nil, bootSilent, bootPoll, ""},
		{"already up: OK to AT", []bootEvent{ok}, bootReady, bootDone, ""},
		{"no answer: wait", []bootEvent{timeout}, bootPolled, bootWait, ""},
		{"no answer, then the next poll", []bootEvent{timeout, tick}, bootSilent, bootPoll, ""},
		{"an unrelated URC wakes a wait: poll again", []bootEvent{timeout, urc(`+QIND: "csq",1`)}, bootSilent, bootPoll, ""},
		{"RDY: booting", []bootEvent{urc("RDY")}, bootBooting, bootWait, ""},
		{"booting: OK to AT is not enough", []bootEvent{urc("RDY"), ok}, bootBooting, bootWait, ""},
		{"booting: a tick does not poll", []bootEvent{urc("RDY"), tick}, bootBooting, bootWait, ""},
		{"RDY, SIM, SMS: ready", []bootEvent{urc("RDY"), urc("+CPIN: READY"), urc("+QIND: SMS DONE")}, bootReady, bootDone, ""},
		{"armed after RDY: SIM and SMS suffice", []bootEvent{timeout, urc("+QIND: SMS DONE"), urc("+CPIN: READY")}, bootReady, bootDone, ""},
		{"SIM alone: booting", []bootEvent{urc("+CPIN: READY")}, bootBooting, bootWait, ""},
		{"other +QIND while booting", []bootEvent{urc("RDY"), urc(`+QIND: "csq",1`)}, bootBooting, bootWait, ""},
		{"PIN wanted", []bootEvent{urc("RDY"), urc("+CPIN: SIM PIN")}, bootFailed, bootFail, "SIM is locked (SIM PIN)"},
		{"PUK wanted", []bootEvent{urc("+CPIN: SIM PUK")}, bootFailed, bootFail, "SIM is locked (SIM PUK)"},
		{"garbled +CPIN", []bootEvent{urc("+CPIN:")}, bootFailed, bootFail, "waiting for the modem"},
		{"port closed while silent", []bootEvent{closed}, bootFailed, bootFail, "port closed"},
		{"port closed while booting", []bootEvent{urc("RDY"), closed}, bootFailed, bootFail, "port closed"},
		{"ready stays ready", []bootEvent{ok, urc("+CPIN: SIM PIN"), closed}, bootReady, bootDone, ""},
	} {
		var b boot
		for _, ev := range c.events {
			b = b.next(ev)
		}
		var msg string
		if b.err != nil {
			msg = b.err.Error()
		}
		if b.state != c.state || b.action() != c.action || (c.wantErr == "") != (b.err == nil) || !strings.Contains(msg, c.wantErr) {
			t.Errorf("%s: state %d action %d err %v; want %d, %d, %q", c.name, b.state, b.action(), b.err, c.state, c.action, c.wantErr)
		}
		if c.wantErr == "port closed" && !errors.Is(b.err, at.ErrClosed) {
			t.Errorf("%s: %v does not wrap at.ErrClosed", c.name, b.err)
		}
	}
}

func TestBootString(t *testing.T) {
	if got := (boot{}).String(); got != "no answer to AT and no start-up URC" {
		t.Errorf("nothing seen: %q", got)
	}
	if got := (boot{rdy: true, sms: true}).String(); got != "saw RDY, +QIND: SMS DONE; still waiting for +CPIN: READY" {
		t.Errorf("partial: %q", got)
	}
}
