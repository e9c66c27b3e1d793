package bg96emu

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// A real DELIVER from python-gsmmodem's fixtures (pdu_vectors.json,
// pg-deliver-7bit-test2): "Test2" from +27821234567.
const test2PDU = "06917228195339040B917228214365F700003130805120618005D4F29C2E03"

func TestCMGS(t *testing.T) {
	m, h := startModem(t, fastConfig())
	pdu, n := submitPDU(t, "+491701234567", "hello network", false)
	h.send(fmt.Sprintf("AT+CMGS=%d\r", n))
	h.expect(fmt.Sprintf("AT+CMGS=%d\r\r\n> ", n))
	h.send(pdu + "\x1a")
	h.expect(pdu + "\r\n+CMGS: 0\r\n\r\nOK\r\n") // the PDU is echoed, Ctrl-Z is not
	h.echoOff()
	h.cmd(fmt.Sprintf("AT+CMGS=%d", n), "\r\n> ")
	h.send(pdu + "\x1a")
	h.expect("\r\n+CMGS: 1\r\n\r\nOK\r\n")
	// ESC aborts: OK and nothing sent.
	h.cmd(fmt.Sprintf("AT+CMGS=%d", n), "\r\n> ")
	h.send(pdu[:10] + "\x1b")
	h.expect("\r\nOK\r\n")
	// Length mismatch, bad hex, a DELIVER instead of a SUBMIT: 304.
	for _, bad := range []struct {
		n   int
		pdu string
	}{{n + 1, pdu}, {n, pdu[:len(pdu)-1] + "G"}, {n, pdu[:5]}, {27, test2PDU}} {
		h.cmd(fmt.Sprintf("AT+CMGS=%d", bad.n), "\r\n> ")
		h.send(bad.pdu + "\x1a")
		h.expect("\r\n+CMS ERROR: 304\r\n")
	}
	h.cmd("AT+CMGS=0", "\r\n+CMS ERROR: 304\r\n")
	h.cmd("AT+CMGS=200", "\r\n+CMS ERROR: 304\r\n")
	h.cmd("AT+CMGF=1", ok())
	h.cmd("AT+CMGS=20", "\r\n+CMS ERROR: 302\r\n")
	h.cmd("AT+CMGF=0", ok())

	sent := m.SentMessages()
	if len(sent) != 2 {
		t.Fatalf("sent %d messages, want 2", len(sent))
	}
	if s := sent[1]; s.MR != 1 || s.To != "+491701234567" || s.Text != "hello network" {
		t.Errorf("sent[1] = MR %d To %q Text %q", s.MR, s.To, s.Text)
	}

	// Not registered: the network cannot take it.
	if err := m.SetRegistration(AllDomains, Registration{Stat: Searching}); err != nil {
		t.Fatal(err)
	}
	h.cmd(fmt.Sprintf("AT+CMGS=%d", n), "\r\n> ")
	h.send(pdu + "\x1a")
	h.expect("\r\n+CMS ERROR: 331\r\n")
}

func TestStatusReport(t *testing.T) {
	m, h := startModem(t, fastConfig())
	h.echoOff()
	h.cmd("AT+CNMI=2,1,0,1,0", ok())
	pdu, n := submitPDU(t, "5432145", "report me", true)
	h.cmd(fmt.Sprintf("AT+CMGS=%d", n), "\r\n> ")
	h.send(pdu + "\x1a")
	h.expect("\r\n+CMGS: 0\r\n\r\nOK\r\n")
	urc := h.until("\r\n", time.Second) + h.until("\r\n", time.Second) + h.until("\r\n", time.Second)
	if !strings.HasPrefix(urc, "\r\n+CDS: ") {
		t.Fatalf("want +CDS, got %q", urc)
	}
	t.Logf("status report: %q", urc)
	h.cmd("AT+CNMI=2,1,0,2,0", ok())
	h.cmd(fmt.Sprintf("AT+CMGS=%d", n), "\r\n> ")
	h.send(pdu + "\x1a")
	h.expect("\r\n+CMGS: 1\r\n\r\nOK\r\n")
	h.expect("\r\n+CDSI: \"SM\",0\r\n")
	if st := m.Stored(); len(st) != 1 || st[0].Stat != 0 {
		t.Fatalf("stored %+v", st)
	}
	// The EC25 quirk: the report was announced but CMGR answers a bare OK.
	m.CMGROnlyOK(true)
	h.cmd("AT+CMGR=0", ok())
	m.CMGROnlyOK(false)
	h.send("AT+CMGR=0\r")
	h.until("\r\nOK\r\n", time.Second)
}

func TestStorage(t *testing.T) {
	cfg := fastConfig()
	cfg.StorageSize = 3
	m, h := startModem(t, cfg)
	h.echoOff()
	if err := m.DeliverSMS(test2PDU); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\n+CMTI: \"SM\",0\r\n")
	h.cmd("AT+CMGR=0", ok("+CMGR: 0,,24", test2PDU))
	h.cmd("AT+CMGR=0", ok("+CMGR: 1,,24", test2PDU)) // now read
	h.cmd("AT+CMGR=1", ok())                         // empty in-range slot
	h.cmd("AT+CMGR=3", "\r\n+CMS ERROR: 321\r\n")

	pdu, n := submitPDU(t, "+491701234567", "draft", false)
	h.cmd(fmt.Sprintf("AT+CMGW=%d", n), "\r\n> ")
	h.send(pdu + "\x1a")
	h.expect("\r\n+CMGW: 1\r\n\r\nOK\r\n")
	if err := m.DeliverText("+491701234567", "second"); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\n+CMTI: \"SM\",2\r\n")
	h.cmd("AT+CPMS?", ok(`+CPMS: "SM",3,3,"SM",3,3,"SM",3,3`))

	second := m.Stored()[2]
	secondHex := fmt.Sprintf("%X", second.PDU)
	h.cmd("AT+CMGL=0", ok(fmt.Sprintf("+CMGL: 2,0,,%d", tpduLen(second.PDU)), secondHex))
	h.cmd("AT+CMGL=0", ok())
	h.cmd("AT+CMGL=4", ok(
		"+CMGL: 0,1,,24", test2PDU,
		fmt.Sprintf("+CMGL: 1,2,,%d", n), pdu,
		fmt.Sprintf("+CMGL: 2,1,,%d", tpduLen(second.PDU)), secondHex))
	h.cmd("AT+CMGL=5", "\r\n+CMS ERROR: 302\r\n")

	// Full: a new MT waits in the network silently, CMGW gets 322.
	if err := m.DeliverText("+491701234567", "third"); err != nil {
		t.Fatal(err)
	}
	h.quiet(100 * time.Millisecond)
	if m.Pending() != 1 {
		t.Fatalf("pending = %d, want 1", m.Pending())
	}
	h.cmd(fmt.Sprintf("AT+CMGW=%d", n), "\r\n> ")
	h.send(pdu + "\x1a")
	h.expect("\r\n+CMS ERROR: 322\r\n")
	// Freeing a slot lets the network deliver.
	h.cmd("AT+CMGD=0", ok()+"\r\n+CMTI: \"SM\",0\r\n")
	h.cmd("AT+CMGD=1,1", ok()) // deletes the read message in slot 2
	if st := m.Stored(); len(st) != 2 || st[0].Index != 0 || st[1].Index != 1 {
		t.Fatalf("stored after CMGD=1,1: %+v", st)
	}
	h.cmd("AT+CMGD=0,3", ok()) // read, sent and unsent: leaves the unread one
	if st := m.Stored(); len(st) != 1 || st[0].Stat != 0 {
		t.Fatalf("stored after CMGD=0,3: %+v", st)
	}
	h.cmd("AT+CMGD=0,4", ok())
	h.cmd("AT+CMGD=9", "\r\n+CMS ERROR: 321\r\n")
	if len(m.Stored()) != 0 {
		t.Fatalf("stored after CMGD=0,4: %+v", m.Stored())
	}
	if err := m.DeliverSMS("00"); err == nil {
		t.Error("DeliverSMS accepted a PDU without a TPDU")
	}
	if err := m.DeliverSMS("zz"); err == nil {
		t.Error("DeliverSMS accepted non-hex")
	}
}

func TestCMTDirect(t *testing.T) {
	m, h := startModem(t, fastConfig())
	h.echoOff()
	h.cmd("AT+CNMI=2,2,0,0,0", ok())
	if err := m.DeliverSMS(test2PDU); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\n+CMT: ,24\r\n" + test2PDU + "\r\n")
	if len(m.Stored()) != 0 {
		t.Fatal("+CMT message was stored")
	}
	// Unregistered: held by the network until registration.
	if err := m.SetRegistration(AllDomains, Registration{Stat: Searching}); err != nil {
		t.Fatal(err)
	}
	if err := m.DeliverSMS(test2PDU); err != nil {
		t.Fatal(err)
	}
	h.quiet(50 * time.Millisecond)
	if err := m.SetRegistration(EPS, Registration{Stat: Roaming, Area: "00FF", Cell: "1", AcT: ActNBIoT}); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\n+CMT: ,24\r\n" + test2PDU + "\r\n")
}

func TestDeliverLongText(t *testing.T) {
	m, h := startModem(t, fastConfig())
	h.echoOff()
	if err := m.DeliverText("+491701234567", strings.Repeat("long message ", 20)); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\n+CMTI: \"SM\",0\r\n\r\n+CMTI: \"SM\",1\r\n")
}
