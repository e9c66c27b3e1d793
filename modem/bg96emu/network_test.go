package bg96emu

import (
	"fmt"
	"testing"
	"time"
)

func TestICCID(t *testing.T) {
	for _, c := range []struct{ cfg, want string }{
		{"", "89882280666012345678"},
		{"8988228066601234567F", "8988228066601234567"},
		{"8988228066601234567", "8988228066601234567"},
	} {
		if got := New(Config{ICCID: c.cfg}).ICCID(); got != c.want {
			t.Errorf("ICCID() with Config.ICCID %q = %q, want %q", c.cfg, got, c.want)
		}
	}
}

func TestNetworkReset(t *testing.T) {
	m, h := startModem(t, Config{RegisterDelay: 300 * time.Millisecond})
	h.echoOff()
	h.cmd("AT+CREG=1;+CGREG=1;+CEREG=2", ok())
	start := time.Now()
	m.NetworkReset()
	h.expect("\r\n+CREG: 2\r\n\r\n+CGREG: 2\r\n\r\n+CEREG: 2\r\n")
	if r := m.Registered(EPS); r.Stat != Searching {
		t.Errorf("EPS during the reset: %+v, want searching", r)
	}
	// The detached modem cannot send; an MT message waits in the network.
	pdu, n := submitPDU(t, "5432145", "during reset", false)
	h.cmd(fmt.Sprintf("AT+CMGS=%d", n), "\r\n> ")
	h.send(pdu + "\x1a")
	h.expect("\r\n+CMS ERROR: 331\r\n")
	if err := m.DeliverText("+491701234567", "held"); err != nil {
		t.Fatal(err)
	}
	if m.Pending() != 1 {
		t.Errorf("Pending() = %d during the reset, want 1", m.Pending())
	}
	h.expect("\r\n+CREG: 1\r\n\r\n+CGREG: 1\r\n\r\n+CEREG: 1,\"1A2B\",\"01A2B3C\",8\r\n\r\n+CMTI: \"SM\",0\r\n")
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("re-registered after %v, before RegisterDelay", d)
	}
	if r := m.Registered(EPS); r.Stat != Home {
		t.Errorf("EPS after the reset: %+v, want home", r)
	}

	// At CFUN 0 there is nothing to detach: no URCs, and CFUN=1 later
	// registers on its own schedule.
	h.cmd("AT+CFUN=0", ok()+"\r\n+CREG: 0\r\n\r\n+CGREG: 0\r\n\r\n+CEREG: 0\r\n")
	m.NetworkReset()
	h.quiet(400 * time.Millisecond)
	if r := m.Registered(CS); r.Stat != NotSearching {
		t.Errorf("CS at CFUN 0 after a reset: %+v", r)
	}
}
