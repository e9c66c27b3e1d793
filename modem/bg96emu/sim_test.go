package bg96emu

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.bug.st/serial"
)

func TestSerialOpensPTY(t *testing.T) {
	m, h := startModem(t, fastConfig())
	if err := h.port.SetMode(&serial.Mode{BaudRate: 9600}); err != nil {
		t.Errorf("SetMode on pty: %v", err)
	}
	// A pty has no modem-control lines; record what go.bug.st/serial
	// makes of that so engine authors know what to expect.
	if _, err := h.port.GetModemStatusBits(); err != nil {
		t.Logf("GetModemStatusBits on a pty: %v", err)
	}
	if err := h.port.SetDTR(true); err != nil {
		t.Logf("SetDTR on a pty: %v", err)
	}
	h.send("AT\r")
	h.expect("AT\r\r\nOK\r\n")
	if _, err := serial.Open(m.Path(), &serial.Mode{BaudRate: 115200}); err == nil {
		t.Log("a second open of the pty succeeded (no TIOCEXCL)")
	} else {
		t.Logf("a second open of the pty fails: %v", err)
	}
}

func TestEchoShapes(t *testing.T) {
	_, h := startModem(t, fastConfig())
	h.send("AT\r")
	h.expect("AT\r\r\nOK\r\n")
	h.send("at+qcsq\r")
	h.expect("at+qcsq\r\r\n+QCSQ: \"CAT-M1\",-65,-95,160,-11\r\n\r\nOK\r\n")
	h.send("AT\r\n") // CRLF terminated: the LF is echoed, not a second line
	h.expect("AT\r\n\r\nOK\r\n")
	h.send("ATE0\r")
	h.expect("ATE0\r\r\nOK\r\n")
	h.cmd("AT", "\r\nOK\r\n")
	h.send("AT\n") // bare LF terminates too
	h.expect("\r\nOK\r\n")
	h.send("\r\r") // empty lines are ignored
	h.quiet(100 * time.Millisecond)
	h.cmd("AT&FZE0", "\r\nOK\r\n")
	h.cmd("ATE1", "\r\nOK\r\n")
	h.send("ATE0;+CMEE=2\r")
	h.expect("ATE0;+CMEE=2\r\r\nOK\r\n")
	h.cmd("AT+CMEE?;+CMGF?", ok("+CMEE: 2", "+CMGF: 0"))
}

func TestCommands(t *testing.T) {
	_, h := startModem(t, fastConfig())
	h.echoOff()
	for _, tc := range []struct{ line, want string }{
		{"ATI", ok("Quectel", "BG96", "Revision: BG96MAR02A07M1G")},
		{"AT+CGMI", ok("Quectel")},
		{"AT+GMI", ok("Quectel")},
		{"AT+CGMM", ok("BG96")},
		{"AT+CGMR", ok("BG96MAR02A07M1G")},
		{"AT+QGMR", ok("BG96MAR02A07M1G")},
		{"AT+CGSN", ok("866425031234567")},
		{"AT+GSN", ok("866425031234567")},
		{"AT+QCCID", ok("+QCCID: 89882280666012345678")},
		{"AT+CIMI", ok("901405100012345")},
		{"AT+CPIN?", ok("+CPIN: READY")},
		{"AT+CMEE?", ok("+CMEE: 1")},
		{"AT+CMEE=?", ok("+CMEE: (0-2)")},
		{"AT+CNMI?", ok("+CNMI: 2,1,0,0,0")},
		{"AT+CSCA?", ok(`+CSCA: "+882285000016860",145`)},
		{`AT+CSCA="+491710760000",145`, ok()},
		{"AT+CSCA?", ok(`+CSCA: "+491710760000",145`)},
		{"AT+CPMS?", ok(`+CPMS: "SM",0,10,"SM",0,10,"SM",0,10`)},
		{`AT+CPMS="SM","SM","SM"`, ok("+CPMS: 0,10,0,10,0,10")},
		{`AT+CPMS="ME"`, "\r\n+CMS ERROR: 302\r\n"},
		{"AT+CREG?", ok("+CREG: 0,1")},
		{"AT+CEREG=2", ok()},
		{"AT+CEREG?", ok(`+CEREG: 2,1,"1A2B","01A2B3C",8`)},
		{"AT+CSQ", ok("+CSQ: 24,99")},
		{"AT+QCSQ=?", ok(`+QCSQ: "NOSERVICE","GSM","CAT-M1","CAT-NB1"`)},
		{"AT+COPS?", ok(`+COPS: 0,0,"Telekom.de",8`)},
		{"AT+COPS=3,2", ok()},
		{"AT+COPS?", ok(`+COPS: 0,2,"26201",8`)},
		{"AT+QNWINFO", ok(`+QNWINFO: "CAT-M1","26201","LTE BAND 20",6300`)},
		{"AT+CGATT?", ok("+CGATT: 1")},
		{"AT+CFUN?", ok("+CFUN: 1")},
		{"AT+CFUN=2", "\r\nERROR\r\n"},
		{"AT+BOGUS", "\r\nERROR\r\n"},
		{"HELLO", "\r\nERROR\r\n"},
		{"AT+CMEE=7", "\r\nERROR\r\n"},
		{`AT+CSCA="+49`, "\r\nERROR\r\n"},
		{"AT+CMGR=99", "\r\n+CMS ERROR: 321\r\n"},
		{"AT+CMEE=2", ok()},
		{"AT+CMGR=99", "\r\n+CMS ERROR: invalid memory index\r\n"},
		{"AT+CMEE=0", ok()},
		{"AT+CMGR=99", "\r\nERROR\r\n"},
	} {
		h.cmd(tc.line, tc.want)
	}
}

func TestSignalVariants(t *testing.T) {
	m, h := startModem(t, fastConfig())
	h.echoOff()
	for _, tc := range []struct {
		s         Signal
		csq, qcsq string
	}{
		{Signal{Act: "GSM", RSSI: -71}, "+CSQ: 21,99", `+QCSQ: "GSM",-71`},
		{Signal{Act: "CAT-NB1", RSSI: -80, RSRP: -90, SINR: -3, RSRQ: -10}, "+CSQ: 16,99", `+QCSQ: "CAT-NB1",-80,-90,85,-10`},
		{NoService, "+CSQ: 99,99", `+QCSQ: "NOSERVICE"`},
	} {
		if err := m.SetSignal(tc.s); err != nil {
			t.Fatal(err)
		}
		h.cmd("AT+CSQ", ok(tc.csq))
		h.cmd("AT+QCSQ", ok(tc.qcsq))
	}
	if err := m.SetSignal(Signal{Act: "5G"}); err == nil {
		t.Error("SetSignal accepted act 5G")
	}
}

func TestRegistrationURCs(t *testing.T) {
	m, h := startModem(t, Config{StartUnregistered: true, RegisterDelay: 100 * time.Millisecond})
	h.echoOff()
	h.cmd("AT+CREG?", ok("+CREG: 0,0"))
	h.cmd("AT+COPS?", ok("+COPS: 0"))
	h.cmd("AT+QNWINFO", ok("+QNWINFO: No Service"))
	h.cmd("AT+CREG=1;+CEREG=2", ok())
	reg := Registration{Stat: Searching}
	if err := m.SetRegistration(AllDomains, reg); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\n+CREG: 2\r\n\r\n+CEREG: 2\r\n")
	reg = Registration{Stat: Home, Area: "1A2B", Cell: "01A2B3C", AcT: ActEMTC}
	if err := m.SetRegistration(EPS, reg); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\n+CEREG: 1,\"1A2B\",\"01A2B3C\",8\r\n")
	// Cat-M-only SIMs: CS denied while EPS is registered (TinyGSM PR #467).
	if err := m.SetRegistration(CS, Registration{Stat: Denied}); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\n+CREG: 3\r\n")
	reg.Cell = "01A2B3D" // cell change: only n=2 reports it
	if err := m.SetRegistration(AllDomains, reg); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\n+CREG: 1\r\n\r\n+CEREG: 1,\"1A2B\",\"01A2B3D\",8\r\n")
	h.cmd("AT+CGREG?", ok(`+CGREG: 0,1`))
	h.cmd("AT+CGATT=0", ok()+"\r\n+CEREG: 0\r\n")
	h.cmd("AT+CGATT?", ok("+CGATT: 0"))
	h.cmd("AT+CGATT=1", ok()+"\r\n+CEREG: 1,\"1A2B\",\"01A2B3D\",8\r\n")
	h.cmd("AT+CFUN=0", ok()+"\r\n+CREG: 0\r\n\r\n+CEREG: 0\r\n")
	h.cmd("AT+CSQ", ok("+CSQ: 99,99"))
	h.cmd("AT+CFUN=1", ok()+"\r\n+CREG: 2\r\n\r\n+CEREG: 2\r\n")
	h.expect("\r\n+CREG: 1\r\n\r\n+CEREG: 1,\"1A2B\",\"01A2B3D\",8\r\n")
	h.cmd("AT+COPS=2", ok()+"\r\n+CREG: 0\r\n\r\n+CEREG: 0\r\n")
	h.cmd("AT+COPS=0", ok()+"\r\n+CREG: 2\r\n\r\n+CEREG: 2\r\n")
	h.expect("\r\n+CREG: 1\r\n\r\n+CEREG: 1,\"1A2B\",\"01A2B3D\",8\r\n")
	if err := m.SetRegistration(Domain(7), reg); err == nil {
		t.Error("SetRegistration accepted domain 7")
	}
	if err := m.SetRegistration(CS, Registration{Stat: 9}); err == nil {
		t.Error("SetRegistration accepted stat 9")
	}
}

func TestReboot(t *testing.T) {
	cfg := fastConfig()
	cfg.BootDelay = 500 * time.Millisecond
	m, h := startModem(t, cfg)
	h.send("AT+CMEE=2;+CREG=1\r")
	h.expect("AT+CMEE=2;+CREG=1\r\r\nOK\r\n")
	h.send("AT+CFUN=1,1\r")
	h.expect("AT+CFUN=1,1\r\r\nOK\r\n\r\nPOWERED DOWN\r\n")
	h.ignored(m, "AT\r") // the modem is deaf while it boots
	boot := "\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\n+QUSIM: 1\r\n\r\n+QIND: SMS DONE\r\n\r\nAPP RDY\r\n"
	h.expect(boot)
	// Settings are back to defaults: echo on, CMEE=1, CREG n=0. The stat
	// is searching, or home once RegisterDelay has passed on a slow host.
	h.send("AT+CMEE?;+CREG?\r")
	switch got := h.until("OK\r\n", 2*time.Second); got {
	case "AT+CMEE?;+CREG?\r\r\n+CMEE: 1\r\n+CREG: 0,2\r\n\r\nOK\r\n",
		"AT+CMEE?;+CREG?\r\r\n+CMEE: 1\r\n+CREG: 0,1\r\n\r\nOK\r\n":
	default:
		t.Fatalf("settings after reboot: %q", got)
	}
	// The modem re-registers RegisterDelay after boot; poll like a host.
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.send("AT+CREG?\r")
		got := h.until("OK\r\n", 2*time.Second)
		if got == "AT+CREG?\r\r\n+CREG: 0,1\r\n\r\nOK\r\n" {
			break
		}
		if got != "AT+CREG?\r\r\n+CREG: 0,2\r\n\r\nOK\r\n" || time.Now().After(deadline) {
			t.Fatalf("not registered after reboot: %q", got)
		}
		time.Sleep(20 * time.Millisecond)
	}

	h.send("AT+QPOWD\r")
	h.expect("AT+QPOWD\r\r\nOK\r\n\r\nPOWERED DOWN\r\n")
	h.ignored(m, "AT\r")
	m.Reboot()
	h.expect(boot)
	h.send("AT+QPOWD=0\r")
	h.expect("AT+QPOWD=0\r\r\nPOWERED DOWN\r\n")
	h.ignored(m, "AT\r")
}

func TestHangUpAndLink(t *testing.T) {
	m, h := startModem(t, fastConfig())
	link := filepath.Join(t.TempDir(), "ttyBG96")
	if err := m.Link(link); err != nil {
		t.Fatal(err)
	}
	old := m.PTY()
	if got, _ := os.Readlink(link); got != old {
		t.Fatalf("link -> %q, want %q", got, old)
	}
	if m.Path() != link {
		t.Fatalf("Path() = %q, want the link", m.Path())
	}
	h.echoOff()
	if err := m.DeliverText("+491701234567", "before"); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\n+CMTI: \"SM\",0\r\n")
	if err := m.HangUp(200 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if err := h.port.SetReadTimeout(time.Second); err != nil {
		t.Fatal(err)
	}
	if n, err := h.port.Read(buf); err == nil {
		t.Fatalf("read on the hung-up port returned %d bytes, no error", n)
	} else {
		t.Logf("host read after hang-up: %v", err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for m.PTY() == "" || m.PTY() == old {
		if time.Now().After(deadline) {
			t.Fatal("no new pty after hang-up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got, _ := os.Readlink(link); got != m.PTY() {
		t.Fatalf("link -> %q, want new pty %q", got, m.PTY())
	}
	h2 := dial(t, link)
	// Still powered: echo stays off and storage survived.
	h2.cmd("AT+CPMS?", ok(`+CPMS: "SM",1,10,"SM",1,10,"SM",1,10`))
	if err := New(Config{}).HangUp(time.Second); err == nil {
		t.Error("HangUp before Start succeeded")
	}
}

func TestCloseRemovesLink(t *testing.T) {
	m := New(fastConfig())
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "ttyBG96")
	if err := m.Link(link); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Errorf("link still there after Close: %v", err)
	}
}

// TestPacing checks that output crosses the line no faster than 8N1 at
// the configured baud allows. It only asserts a coarse lower bound.
func TestPacing(t *testing.T) {
	cfg := fastConfig()
	cfg.Baud = 9600
	m, h := startModem(t, cfg)
	h.echoOff()
	payload := make([]byte, 960) // 1 s at 9600 baud
	for i := range payload {
		payload[i] = 'x'
	}
	start := time.Now()
	m.Garbage(payload)
	h.expect(string(payload))
	el := time.Since(start)
	wire := time.Duration(len(payload)) * 10 * time.Second / 9600
	t.Logf("%d bytes at 9600 baud: %v (wire time %v)", len(payload), el, wire)
	if el < wire*8/10 {
		t.Errorf("output not paced: %v < 80%% of %v", el, wire)
	}
	st := m.Stats()
	if st.BytesOut < int64(len(payload)) || st.BytesIn == 0 || st.Commands == 0 {
		t.Errorf("stats %+v", st)
	}
}

func BenchmarkPacedAT(b *testing.B) {
	m := New(fastConfig())
	if err := m.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	h := dial(b, m.Path())
	h.send("ATE0\r")
	h.until("OK\r\n", time.Second)
	b.ResetTimer()
	for b.Loop() {
		h.send("AT+CSQ\r")
		h.until("OK\r\n", time.Second)
	}
	b.ReportMetric(float64(len("AT+CSQ\r")+len(ok("+CSQ: 24,99")))*10/115200*1e6, "wire-µs/op")
}
