package sms_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"cellagent/modem/at"
	"cellagent/modem/bg96"
	"cellagent/modem/bg96emu"
	"cellagent/modem/bg96emu/bg96emutest"
	"cellagent/modem/clock/clocktest"
	"cellagent/modem/sms"
)

const operatorSMSC = "+882285000016860"

// bench is a simulated BG96 on a real pty, opened and initialised the way
// the agent does it, with the indications the tests wait for.
type bench struct {
	t    *testing.T
	m    *bg96emu.Modem
	a    *at.AT
	ctx  context.Context
	cmti chan []string
	cds  chan []string
}

func newBench(t *testing.T, cfg bg96emu.Config) *bench {
	t.Helper()
	cfg.BootDelay, cfg.RegisterDelay, cfg.ReportDelay = 150*time.Millisecond, 100*time.Millisecond, 50*time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	m := bg96emutest.Start(t, cfg)
	a := bg96emutest.Engine(t, m)
	b := &bench{t: t, m: m, a: a, ctx: ctx, cmti: make(chan []string, 32), cds: make(chan []string, 32)}
	a.AddIndication("+CMTI", func(l []string) { b.cmti <- l })
	a.AddIndication("+CDS", func(l []string) { b.cds <- l })
	if err := bg96.Init(ctx, a, bg96.InitConfig{SMSC: bg96.OperatorSMSC}); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *bench) wait(ch chan []string) []string {
	b.t.Helper()
	select {
	case l := <-ch:
		return l
	case <-time.After(5 * time.Second):
		b.t.Fatal("no indication within 5s")
	}
	return nil
}

// receive lists the message a +CMTI announces, as the agent's inbox
// takes messages: by listing the SIM. Listing marks every unread message
// read, so a receive reports RecUnread only for a message that arrived
// after the last one.
func (b *bench) receive() sms.Entry {
	b.t.Helper()
	line := b.wait(b.cmti)[0]
	var index int
	if _, err := fmt.Sscanf(line, `+CMTI: "SM",%d`, &index); err != nil {
		b.t.Fatalf("indication %q: %v", line, err)
	}
	es, err := sms.List(b.ctx, b.a, sms.All)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, e := range es {
		if e.Index == index {
			return e
		}
	}
	b.t.Fatalf("slot %d announced but not listed: %+v", index, es)
	return sms.Entry{}
}

func TestRoundTrip(t *testing.T) {
	b := newBench(t, bg96emu.Config{})
	for _, c := range []struct {
		name, text string
		alpha      sms.Alphabet
	}{
		{"gsm7-extension", "GSM7 €[]{}^~\\| and @£$¥", sms.GSM7},
		{"ucs2-emoji", "Grüße 👋🏽 привет 中文", sms.UCS2},
	} {
		t.Run(c.name, func(t *testing.T) {
			if n, a := sms.Parts(c.text); n != 1 || a != c.alpha {
				t.Fatalf("Parts = %d %v", n, a)
			}
			pdus, err := sms.EncodeText("5432145", c.text, sms.Options{SMSC: bg96.OperatorSMSC})
			if err != nil {
				t.Fatal(err)
			}
			before := len(b.m.SentMessages())
			mrs, err := sms.Send(b.ctx, b.a, pdus...)
			if err != nil || len(mrs) != 1 {
				t.Fatalf("send: %v %v", mrs, err)
			}
			sent := b.m.SentMessages()[before]
			if sent.MR != mrs[0] || sent.To != "5432145" || sent.Text != c.text {
				t.Errorf("sim got MR %d To %q Text %q", sent.MR, sent.To, sent.Text)
			}
			mo := sms.Decode(sent.PDU)
			if mo.Err != nil || mo.Kind != sms.Submit || mo.SMSC != operatorSMSC || mo.Text != c.text {
				t.Errorf("sent PDU decodes to %+v", mo)
			}

			if err := b.m.DeliverText("+491701234567", c.text); err != nil {
				t.Fatal(err)
			}
			e := b.receive()
			if e.Err != nil || e.Text != c.text || e.From != "+491701234567" || e.Alphabet != c.alpha || e.Stat != sms.RecUnread {
				t.Errorf("received %+v", e)
			}
			if e.SCTS.IsZero() || e.SMSC != operatorSMSC {
				t.Errorf("SCTS %v SMSC %q", e.SCTS, e.SMSC)
			}
			if err := sms.Delete(b.ctx, b.a, e.Index); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("8bit", func(t *testing.T) {
		data := []byte{0x00, 0x01, 0xfe, 0xff, 0x1a, 0x1b, 'h', 'i'}
		pdus, err := sms.EncodeData("+491701234567", data, sms.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sms.Send(b.ctx, b.a, pdus...); err != nil {
			t.Fatal(err)
		}
		sent := b.m.SentMessages()
		mo := sms.Decode(sent[len(sent)-1].PDU)
		if mo.Err != nil || mo.DCS != 4 || mo.Alphabet != sms.Data8 || string(mo.Data) != string(data) || mo.SMSC != "" {
			t.Errorf("sent PDU decodes to %+v", mo)
		}
		// MT 8-bit: ModemManager's vector (mm-deliver-8bit-data).
		if err := b.m.DeliverSMS("0791214365870921040B918100551512F2000411101021436500" + "0A" + "E8329BFD4697D9EC37DE"); err != nil {
			t.Fatal(err)
		}
		e := b.receive()
		if e.Err != nil || e.Alphabet != sms.Data8 || hex.EncodeToString(e.Data) != "e8329bfd4697d9ec37de" || e.Text != "" {
			t.Errorf("received %+v", e)
		}
	})
}

func TestLongMessage(t *testing.T) {
	b := newBench(t, bg96emu.Config{})
	var sb strings.Builder
	for sb.Len() < 1000 {
		fmt.Fprintf(&sb, "line %03d of a long report; ", sb.Len())
	}
	text := sb.String()[:1000]
	n, alpha := sms.Parts(text)
	if n != 7 || alpha != sms.GSM7 {
		t.Fatalf("Parts = %d %v, want 7 GSM7 (153 septets a part)", n, alpha)
	}
	refs := sms.NewMemoryRefs(200)
	for round := 0; round < 2; round++ {
		pdus, err := sms.EncodeText("5432145", text, sms.Options{SMSC: bg96.OperatorSMSC, Refs: refs})
		if err != nil || len(pdus) != 7 {
			t.Fatalf("encode: %d %v", len(pdus), err)
		}
		before := len(b.m.SentMessages())
		mrs, err := sms.Send(b.ctx, b.a, pdus...)
		if err != nil || len(mrs) != 7 {
			t.Fatalf("send: %v %v", mrs, err)
		}
		asm := sms.NewAssembler(time.Minute, nil)
		var got *sms.Assembled
		for i, s := range b.m.SentMessages()[before:] {
			m := sms.Decode(s.PDU)
			if m.Err != nil || m.Concat == nil || m.Concat.Ref != 200+round || m.Concat.Total != 7 || m.Concat.Seq != i+1 || s.MR != mrs[i] {
				t.Fatalf("part %d: %+v %+v", i+1, m, m.Concat)
			}
			// The assembler keys on the originator; a SUBMIT has none,
			// so stand in as the receiving side would see it.
			m.Kind, m.From = sms.Deliver, "+491701234567"
			if a, ok := asm.Add(m, time.Now()); ok {
				got = &a
			}
		}
		if got == nil || len(got.Missing) != 0 || got.Text != text || len(got.Parts) != 7 {
			t.Fatalf("reassembled %+v", got)
		}
	}
	if _, err := sms.EncodeText("5432145", strings.Repeat("x", 153*255+1), sms.Options{}); !errors.Is(err, sms.ErrTooLong) {
		t.Errorf("256 parts: %v", err)
	}
}

func TestMultipartMT(t *testing.T) {
	b := newBench(t, bg96emu.Config{StorageSize: 20})
	clock := clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), 0)
	asm := sms.NewAssembler(10*time.Minute, clock)
	text := strings.Repeat("Out of order, and 👍 in UCS-2. ", 8) // UCS-2, 4 parts
	if n, a := sms.Parts(text); n != 4 || a != sms.UCS2 {
		t.Fatalf("Parts = %d %v", n, a)
	}
	if err := b.m.DeliverParts("+491701234567", text, 3, 1, 1, 4, 2); err != nil {
		t.Fatal(err)
	}
	var done []sms.Assembled
	for range 5 {
		if a, ok := asm.Add(b.receive().Message, clock.Now()); ok {
			done = append(done, a)
		}
	}
	if len(done) != 1 || len(done[0].Missing) != 0 || done[0].Text != text || len(done[0].Parts) != 4 {
		t.Fatalf("assembled %+v", done)
	}

	// Part 2 of another message never comes: after the timeout the rest
	// is delivered as incomplete.
	if err := b.m.DeliverParts("+491701234567", text, 1, 3, 4); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if a, ok := asm.Add(b.receive().Message, clock.Now()); ok {
			t.Fatalf("completed without part 2: %+v", a)
		}
	}
	if x := asm.Expire(); len(x) != 0 {
		t.Fatalf("expired early: %+v", x)
	}
	clock.Advance(10 * time.Minute)
	x := asm.Expire()
	if len(x) != 1 || len(x[0].Missing) == 0 || fmt.Sprint(x[0].Missing) != "[2]" || len(x[0].Parts) != 3 || x[0].Total != 4 {
		t.Fatalf("expired %+v", x)
	}
	if !strings.HasPrefix(x[0].Text, "Out of order") {
		t.Errorf("incomplete text %q", x[0].Text)
	}
}

func TestStorageFull(t *testing.T) {
	b := newBench(t, bg96emu.Config{StorageSize: 2})
	for i := range 2 {
		if err := b.m.DeliverText("+491701234567", fmt.Sprintf("fill %d", i)); err != nil {
			t.Fatal(err)
		}
		b.receive()
	}
	pdus, err := sms.EncodeText("5432145", "draft", sms.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.a.SMSCommand(b.ctx, fmt.Sprintf("AT+CMGW=%d", pdus[0].Length), pdus[0].Hex)
	var cms *at.CMSError
	if !errors.As(err, &cms) || cms.Code != 322 || sms.ClassOf(err) != sms.Transient {
		t.Fatalf("CMGW into a full store: %v", err)
	}
	if !strings.Contains(sms.Meaning(err), "322 (memory full): SIM storage is full") {
		t.Errorf("Meaning: %s", sms.Meaning(err))
	}
	// The network holds a new MT until a slot frees.
	if err := b.m.DeliverText("+491701234567", "held"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if b.m.Pending() != 1 {
		t.Fatalf("pending %d", b.m.Pending())
	}
	es, err := sms.List(b.ctx, b.a, sms.All)
	if err != nil || len(es) != 2 {
		t.Fatalf("list: %v %+v", err, es)
	}
	if err := sms.Delete(b.ctx, b.a, es[0].Index); err != nil {
		t.Fatal(err)
	}
	if e := b.receive(); e.Text != "held" {
		t.Errorf("held message arrived as %+v", e)
	}
	if err := sms.DeleteAll(b.ctx, b.a); err != nil {
		t.Fatal(err)
	}
	if st := b.m.Stored(); len(st) != 0 {
		t.Errorf("stored after DeleteAll: %+v", st)
	}
}

func TestCorruptPDUKept(t *testing.T) {
	b := newBench(t, bg96emu.Config{})
	// UDL claims 11 septets, 10 are there (mm-invalid-insufficient-data).
	const corrupt = "07912143658709F1040B918100551512F20000111010214365000BE8329BFD4697D9EC37"
	if err := b.m.DeliverRawPDU(corrupt); err != nil {
		t.Fatal(err)
	}
	if err := b.m.DeliverText("+491701234567", "fine"); err != nil {
		t.Fatal(err)
	}
	b.wait(b.cmti)
	b.wait(b.cmti)
	es, err := sms.List(b.ctx, b.a, sms.All)
	if err != nil || len(es) != 2 {
		t.Fatalf("list: %v %+v", err, es)
	}
	bad := es[0]
	if bad.Err == nil || bad.PDU != corrupt || bad.ID == "" || bad.From != "+18005551212" {
		t.Errorf("corrupt entry %+v", bad)
	}
	if es[1].Err != nil || es[1].Text != "fine" {
		t.Errorf("good entry %+v", es[1])
	}
	// Listed again: same ID, so the inbox de-duplicates it.
	again, err := sms.List(b.ctx, b.a, sms.All)
	if err != nil || len(again) != 2 || again[0].ID != bad.ID || again[0].Stat != sms.RecRead {
		t.Errorf("listed again %+v %v", again, err)
	}
}

func TestStatusReportByMR(t *testing.T) {
	b := newBench(t, bg96emu.Config{})
	pdus, err := sms.EncodeText("5432145", "report me", sms.Options{SMSC: bg96.OperatorSMSC, StatusReport: true})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // move the MR away from 0
		if _, err := sms.Send(b.ctx, b.a, pdus...); err != nil {
			t.Fatal(err)
		}
		b.wait(b.cds)
	}
	mrs, err := sms.Send(b.ctx, b.a, pdus...)
	if err != nil {
		t.Fatal(err)
	}
	m := sms.ParseCDS(b.wait(b.cds))
	if m.Err != nil || m.Kind != sms.StatusReport || m.Report == nil {
		t.Fatalf("status report %+v", m)
	}
	if m.Report.MR != mrs[0] || m.Report.Recipient != "5432145" || !m.Report.Delivered() || !m.Report.Final() {
		t.Errorf("report %+v for MR %d", m.Report, mrs[0])
	}
}

func TestCMSErrors(t *testing.T) {
	b := newBench(t, bg96emu.Config{})
	pdus, err := sms.EncodeText("5432145", "x", sms.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		code  int
		class sms.Class
	}{{331, sms.Transient}, {332, sms.Transient}, {42, sms.Transient}, {38, sms.Transient},
		{330, sms.Permanent}, {304, sms.Permanent}, {21, sms.Permanent}, {1, sms.Permanent}, {545, sms.Unclassified}} {
		if err := b.m.CMSErrorOn("+CMGS", c.code); err != nil {
			t.Fatal(err)
		}
		_, err := sms.Send(b.ctx, b.a, pdus...)
		var se *sms.SendError
		if !errors.As(err, &se) || se.Code != c.code || se.Class != c.class || se.Part != 1 || se.Permanent() != (c.class == sms.Permanent) {
			t.Errorf("code %d: %v (%+v)", c.code, err, se)
		}
	}
	b.m.ClearFaults()
	// A failure in the middle reports the parts already accepted.
	long, err := sms.EncodeText("5432145", strings.Repeat("y", 400), sms.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.m.StopAfter(1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(b.ctx, time.Second)
	defer cancel()
	mrs, err := sms.Send(ctx, b.a, long...)
	var se *sms.SendError
	if !errors.As(err, &se) || se.Part != 2 || len(mrs) != 1 || len(se.MRs) != 1 || se.Class == sms.Permanent {
		t.Errorf("mid-message failure: mrs %v err %v", mrs, err)
	}
}
