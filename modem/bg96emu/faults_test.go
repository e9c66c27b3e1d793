package bg96emu

import (
	"testing"
	"time"
)

func TestFaults(t *testing.T) {
	m, h := startModem(t, fastConfig())
	h.echoOff()

	if err := m.CMEErrorOn("+CSQ", 10); err != nil {
		t.Fatal(err)
	}
	h.cmd("AT+CSQ", "\r\n+CME ERROR: 10\r\n")
	h.cmd("AT+CMEE=2", ok())
	h.cmd("AT+CSQ", "\r\n+CME ERROR: SIM not inserted\r\n")
	h.cmd("AT+CMEE=0", ok())
	h.cmd("AT+CSQ", "\r\nERROR\r\n")
	h.cmd("AT+CMEE=1", ok())
	if err := m.CMSErrorOn("AT+CMGR", 500); err != nil {
		t.Fatal(err)
	}
	h.cmd("AT+CMGR=0", "\r\n+CMS ERROR: 500\r\n")
	if err := m.CMEErrorOn("+CSQ", -1); err == nil {
		t.Error("CMEErrorOn accepted code -1")
	}
	m.ClearFaults()
	h.cmd("AT+CSQ", ok("+CSQ: 24,99"))

	m.DelayCommand("+COPS", 300*time.Millisecond)
	start := time.Now()
	h.cmd("AT+COPS?", ok(`+COPS: 0,0,"Telekom.de",8`))
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Errorf("delayed answer came after %v", el)
	}
	m.DelayCommand("+COPS", 0)

	m.Garbage([]byte("\x00\xff junk"))
	h.expect("\x00\xff junk")

	m.TruncateNext()
	h.send("ATI\r")
	h.expect("\r\nQue")
	h.quiet(100 * time.Millisecond)
	h.cmd("AT", ok())

	m.Silence(true)
	h.ignored(m, "AT\r")
	m.Silence(false)
	h.cmd("AT", ok())

	if err := m.StopAfter(2); err != nil {
		t.Fatal(err)
	}
	h.cmd("AT", ok())
	h.cmd("AT", ok())
	h.ignored(m, "AT\r")
	if err := m.DeliverText("+491701234567", "unseen"); err != nil {
		t.Fatal(err)
	}
	h.quiet(100 * time.Millisecond) // silence mutes URCs too
	m.ClearFaults()
	h.cmd("AT", ok())
	if err := m.StopAfter(-1); err == nil {
		t.Error("StopAfter(-1) accepted")
	}

	// A URC between a response's info line and its final result.
	m.URCsInsideResponse(true)
	if err := m.DeliverText("+491701234567", "inside"); err != nil {
		t.Fatal(err)
	}
	h.quiet(50 * time.Millisecond)
	h.cmd("AT+CSQ", "\r\n+CSQ: 24,99\r\n\r\n+CMTI: \"SM\",1\r\n\r\nOK\r\n")
	m.URCsInsideResponse(false)
}

func TestFaultKey(t *testing.T) {
	for in, want := range map[string]string{"+CSQ": "+CSQ", "at+csq": "+CSQ", "csq": "+CSQ", "E": "E", "&f": "&F", " AT+COPS ": "+COPS"} {
		if got := faultKey(in); got != want {
			t.Errorf("faultKey(%q) = %q, want %q", in, got, want)
		}
	}
}
