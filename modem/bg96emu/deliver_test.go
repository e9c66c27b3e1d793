package bg96emu

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warthog618/sms"
	"github.com/warthog618/sms/encoding/pdumode"
)

func TestDeliverRawPDU(t *testing.T) {
	m, h := startModem(t, fastConfig())
	h.echoOff()
	// Truncated user data: DeliverSMS refuses it, DeliverRawPDU does not.
	const corrupt = "07912143658709F1040B918100551512F20000111010214365000BE8329BFD4697D9EC37"
	if err := m.DeliverSMS(corrupt); err == nil {
		t.Fatal("DeliverSMS accepted a corrupt PDU")
	}
	if err := m.DeliverRawPDU(corrupt); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\n+CMTI: \"SM\",0\r\n")
	h.cmd("AT+CMGR=0", ok("+CMGR: 0,,28", corrupt))
	for _, bad := range []string{"", "zz"} {
		if err := m.DeliverRawPDU(bad); err == nil {
			t.Errorf("DeliverRawPDU(%q) accepted", bad)
		}
	}
}

func TestDeliverParts(t *testing.T) {
	m, h := startModem(t, fastConfig())
	h.echoOff()
	text := strings.Repeat("0123456789", 40) // three parts
	if err := m.DeliverParts("+491701234567", text, 3, 1); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\n+CMTI: \"SM\",0\r\n\r\n+CMTI: \"SM\",1\r\n")
	st := m.Stored()
	var seqs []int
	var refs []int
	for _, s := range st {
		p, err := pdumode.UnmarshalBinary(s.PDU)
		if err != nil {
			t.Fatal(err)
		}
		tp, err := sms.Unmarshal(p.TPDU, sms.AsMT)
		if err != nil {
			t.Fatal(err)
		}
		n, seq, ref, ok := tp.ConcatInfo()
		if !ok || n != 3 {
			t.Fatalf("part without concat info: %+v", tp)
		}
		seqs, refs = append(seqs, seq), append(refs, ref)
	}
	if fmt.Sprint(seqs) != "[3 1]" || refs[0] != refs[1] {
		t.Errorf("seqs %v refs %v, want [3 1] with one ref", seqs, refs)
	}
	// The next long message gets another reference.
	if err := m.DeliverParts("+491701234567", text, 2); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\n+CMTI: \"SM\",2\r\n")
	p, _ := pdumode.UnmarshalBinary(m.Stored()[2].PDU)
	tp, _ := sms.Unmarshal(p.TPDU, sms.AsMT)
	if _, _, ref, _ := tp.ConcatInfo(); ref == refs[0] {
		t.Errorf("second message reuses reference %d", ref)
	}
	if err := m.DeliverParts("+491701234567", text, 4); err == nil {
		t.Error("DeliverParts accepted part 4 of 3")
	}
}

func TestOnSubmit(t *testing.T) {
	got := make(chan SentMessage, 1)
	cfg := fastConfig()
	cfg.OnSubmit = func(s SentMessage) { got <- s }
	_, h := startModem(t, cfg)
	h.echoOff()
	pdu, n := submitPDU(t, "5432145", "to the platform", false)
	h.cmd(fmt.Sprintf("AT+CMGS=%d", n), "\r\n> ")
	h.send(pdu + "\x1a")
	h.expect("\r\n+CMGS: 0\r\n\r\nOK\r\n")
	select {
	case s := <-got:
		if s.MR != 0 || s.Text != "to the platform" || fmt.Sprintf("%X", s.PDU) != pdu {
			t.Errorf("OnSubmit got %+v", s)
		}
	case <-time.After(time.Second):
		t.Fatal("OnSubmit not called")
	}
}
