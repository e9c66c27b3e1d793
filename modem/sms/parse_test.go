package sms

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warthog618/sms/encoding/tpdu"

	"cellagent/modem/clock/clocktest"
)

const (
	test2PDU  = "06917228195339040B917228214365F700003130805120618005D4F29C2E03" // "Test2"
	zteSRPDU  = "0297F1061C0F910B487228297020F5317062419272803170624192138000"
	cmgrSRPDU = "07917248014000F506B70AA18092020000317071518590803170715185418000"
)

func TestParseDirect(t *testing.T) {
	for _, h := range []string{"+CMT: ,24", `+CMT: "Test, User",24`, `+CMT: "",24`} {
		if m := ParseCMT([]string{h, test2PDU}); m.Err != nil || m.Text != "Test2" {
			t.Errorf("%q: %+v", h, m)
		}
	}
	if m := ParseCMT([]string{"+CMT: ,x", test2PDU}); m.Err == nil || m.Text != "Test2" || m.PDU != test2PDU {
		t.Errorf("bad length: %+v", m)
	}
	if m := ParseCMT([]string{"+CMT: ,24"}); m.Err == nil || m.ID == "" {
		t.Errorf("no PDU line: %+v", m)
	}
	m := ParseCDS([]string{"+CDS: 24", cmgrSRPDU})
	if m.Err != nil || m.Report == nil || m.Report.MR != 183 || !m.Report.Delivered() {
		t.Errorf("+CDS: %+v %+v", m, m.Report)
	}
}

func TestParseCMGL(t *testing.T) {
	es, err := ParseCMGL([]string{
		"+CMGL: 0,0,,24", test2PDU,
		"+CMGL: 1,1,,24", // PDU line missing
		"+CMGL: 2,,,27", zteSRPDU,
		"+CMGL: x,1,,24", test2PDU, // bad header: kept, not deletable
		"0011zz", // stray line
		"+CMGL: 5,3,,24", "NOTHEX",
	})
	if err == nil {
		t.Error("shape faults not reported")
	}
	got := []string{}
	for _, e := range es {
		got = append(got, fmt.Sprintf("%d/%d/%v", e.Index, e.Stat, e.Err != nil))
	}
	if want := "[0/0/false 1/1/true 2/-1/false -1/-1/false -1/-1/true 5/3/true]"; fmt.Sprint(got) != want {
		t.Errorf("entries %v, want %s", got, want)
	}
}

func TestIDStable(t *testing.T) {
	a, b := DecodeHex(test2PDU), DecodeHex(strings.ToLower(test2PDU))
	if a.ID != b.ID || len(a.ID) != 32 {
		t.Errorf("IDs %s %s", a.ID, b.ID)
	}
	// Same text from the same sender a second later is another message.
	c := DecodeHex(strings.Replace(test2PDU, "31308051206180", "31308051206190", 1))
	if c.Err != nil || c.ID == a.ID {
		t.Errorf("different SCTS, same ID: %+v", c)
	}
	bad := DecodeHex("00")
	if bad.Err == nil || bad.ID != hashID([]byte{0}) {
		t.Errorf("undecodable: %+v", bad)
	}
}

func TestDecodeSplitSurrogate(t *testing.T) {
	// A sender that splits 👍 (D83D DC4D) across two parts.
	mk := func(seq int, ud string) Message {
		tp := fmt.Sprintf("4405812143F50008%s%02X0500032A02%02X%s", "52506120000080", 6+len(ud)/2, seq, ud)
		return DecodeHex("00" + tp)
	}
	p1, p2 := mk(1, "0041D83D"), mk(2, "DC4D0042")
	if p1.Err != nil || p1.Text != "A" {
		t.Fatalf("part 1: %+v", p1)
	}
	asm := NewAssembler(time.Minute, nil)
	asm.Add(p1, time.Now())
	got, ok := asm.Add(p2, time.Now())
	if !ok || got.Text != "A👍B" || got.Err != nil {
		t.Errorf("joined %q %v", got.Text, got.Err)
	}
}

func TestClassify(t *testing.T) {
	for class, codes := range map[Class][]int{
		Transient:    {331, 332, 41, 42, 47, 38, 314, 322},
		Permanent:    {1, 8, 10, 21, 27, 28, 29, 30, 50, 69, 96, 97, 98, 99, 304, 330},
		Unclassified: {0, 500, 999},
	} {
		for _, c := range codes {
			if got := Classify(c); got != class {
				t.Errorf("Classify(%d) = %v, want %v", c, got, class)
			}
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	for _, to := range []string{"", "+", "+49 170 abc", "12345678901234567890123", "+49*1"} {
		if _, err := EncodeText(to, "x", Options{}); err == nil {
			t.Errorf("to %q accepted", to)
		}
	}
	if _, err := EncodeText("5432145", "", Options{}); err != ErrEmpty {
		t.Errorf("empty text: %v", err)
	}
	if _, err := EncodeText("5432145", "x", Options{SMSC: "nope"}); err == nil {
		t.Error("bad SMSC accepted")
	}
	a, err := Address("+882 285 00001 6860")
	if err != nil || a.TOA != 0x91 || a.Addr != "882285000016860" || a.TypeOfNumber() != tpdu.TonInternational {
		t.Errorf("Address = %+v, %v", a, err)
	}
	if a, _ := Address("5432145"); a.TOA != 0x81 {
		t.Errorf("short code TOA %#x", a.TOA)
	}
}

func TestAssemblerRestart(t *testing.T) {
	text := strings.Repeat("restart me ", 40)
	pdus, err := EncodeText("+491701234567", text, Options{Refs: fixedRef(9)})
	if err != nil || len(pdus) != 3 {
		t.Fatal(err)
	}
	// Pretend the parts arrived as DELIVERs: flip MTI and drop TP-MR.
	parts := make([]Message, len(pdus))
	for i, p := range pdus {
		parts[i] = asDeliver(t, p.Hex)
	}
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	clock := clocktest.New(t0, 0)
	a := NewAssembler(time.Hour, clock)
	a.Add(parts[0], t0)
	// The agent restarts 50 minutes later and rebuilds from its store.
	clock.Advance(50 * time.Minute)
	b := NewAssembler(time.Hour, clock)
	if _, ok := b.Add(DecodeHex(parts[0].PDU), t0); ok {
		t.Fatal("one part completed a message")
	}
	b.Add(parts[0], t0) // duplicate after restart: ignored
	b.Add(parts[2], clock.Now())
	clock.Advance(10 * time.Minute)
	x := b.Expire()
	if len(x) != 1 || fmt.Sprint(x[0].Missing) != "[2]" || len(x[0].Parts) != 2 {
		t.Fatalf("expired %+v", x)
	}
}

// asDeliver rewrites an SMS-SUBMIT we encoded into the SMS-DELIVER the
// recipient would see, so encode and reassembly can be tested together.
func asDeliver(t *testing.T, submitHex string) Message {
	t.Helper()
	s := DecodeHex(submitHex)
	if s.Err != nil {
		t.Fatal(s.Err)
	}
	d := *s.tpdu
	d.Direction = tpdu.MT
	d.FirstOctet = tpdu.FirstOctet(byte(d.FirstOctet)&tpdu.FoUDHI) | tpdu.FirstOctet(0).WithMTI(tpdu.MtDeliver)
	d.OA = tpdu.Address{TOA: 0x91, Addr: "491701234567"}
	d.SCTS = tpdu.Timestamp{Time: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	b, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return Decode(append([]byte{0}, b...))
}
