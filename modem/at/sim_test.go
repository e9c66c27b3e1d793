package at_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"cellagent/modem/at"
	"cellagent/modem/bg96"
	"cellagent/modem/bg96emu"
	"cellagent/modem/bg96emu/bg96emutest"
	"cellagent/modem/port"
)

// These tests run the engine against the BG96 simulator over a real pty,
// paced at 115200 baud, as it would talk to /dev/ttyUSB2.

func simEngine(t *testing.T, opts ...at.Option) (*at.AT, *bg96emu.Modem) {
	t.Helper()
	m := bg96emutest.Start(t, bg96emu.Config{BootDelay: 200 * time.Millisecond, RegisterDelay: 100 * time.Millisecond, ReportDelay: 50 * time.Millisecond})
	return bg96emutest.Engine(t, m, append(bg96.EngineOptions(), opts...)...), m
}

func TestSimEchoOn(t *testing.T) {
	// The simulated modem starts with echo on, like a real one after power-up.
	a, _ := simEngine(t)
	info, err := a.Command(context.Background(), "ATI")
	if err != nil || joined(info) != "Quectel|BG96|Revision: BG96MAR02A07M1G" {
		t.Fatalf("info %q err %v", info, err)
	}
	info, err = a.Command(context.Background(), "AT+CSQ")
	if err != nil || joined(info) != "+CSQ: 24,99" {
		t.Fatalf("info %q err %v", info, err)
	}
}

func TestSimURCInsideResponse(t *testing.T) {
	cmti := make(urcSink, 4)
	a, m := simEngine(t)
	a.AddIndication("+CMTI", cmti.handle)
	m.URCsInsideResponse(true)
	if err := m.DeliverText("+491701234567", "inside"); err != nil {
		t.Fatal(err)
	}
	info, err := a.Command(context.Background(), "AT+CSQ")
	if err != nil || joined(info) != "+CSQ: 24,99" {
		t.Fatalf("info %q err %v", info, err)
	}
	if got := joined(cmti.next(t)); got != `+CMTI: "SM",0` {
		t.Errorf("URC %q", got)
	}
}

func TestSimDirectCMT(t *testing.T) {
	cmt := make(urcSink, 4)
	a, m := simEngine(t)
	a.AddIndication("+CMT", cmt.handle)
	ctx := context.Background()
	for _, c := range []string{"ATE0", "AT+CMGF=0", "AT+CNMI=2,2,0,0,0"} {
		if _, err := a.Command(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.DeliverText("+491701234567", "direct"); err != nil {
		t.Fatal(err)
	}
	got := cmt.next(t)
	if len(got) != 2 || !strings.HasPrefix(got[0], "+CMT: ,") || len(got[1]) < 20 {
		t.Fatalf("+CMT URC %q", got)
	}
	if n := len(m.Stored()); n != 0 {
		t.Errorf("direct delivery stored %d messages", n)
	}
}

func TestSimSMSPrompt(t *testing.T) {
	a, m := simEngine(t)
	ctx := context.Background()
	if _, err := a.Command(ctx, "AT+CMGF=0"); err != nil {
		t.Fatal(err)
	}
	// Echo is still on: the simulator echoes the PDU typed at the prompt.
	const pdu = "0011000B911326880736F40000A70341E211"
	info, err := a.SMSCommand(ctx, "AT+CMGS=17", pdu)
	if err != nil || len(info) != 1 || !strings.HasPrefix(info[0], "+CMGS: ") {
		t.Fatalf("info %q err %v", info, err)
	}
	if sent := m.SentMessages(); len(sent) != 1 || sent[0].To != "+31628870634" {
		t.Errorf("sent %+v", sent)
	}
	// A PDU whose length disagrees with the command is refused.
	_, err = a.SMSCommand(ctx, "AT+CMGS=5", pdu)
	var cms *at.CMSError
	if !errors.As(err, &cms) || cms.Code != 304 {
		t.Errorf("bad length: err = %v", err)
	}
}

func TestSimFinalCodes(t *testing.T) {
	a, m := simEngine(t)
	ctx := context.Background()
	if _, err := a.Command(ctx, "AT+NOSUCH"); !errors.Is(err, at.ErrError) {
		t.Errorf("unknown command: %v", err)
	}
	if err := m.CMEErrorOn("+QCCID", 10); err != nil {
		t.Fatal(err)
	}
	var cme *at.CMEError
	for _, mode := range []string{"AT+CMEE=1", "AT+CMEE=2"} {
		if _, err := a.Command(ctx, mode); err != nil {
			t.Fatal(err)
		}
		_, err := a.Command(ctx, "AT+QCCID")
		if !errors.As(err, &cme) || cme.Code != 10 {
			t.Errorf("%s: err = %v", mode, err)
		}
	}
	if err := m.CMSErrorOn("+CMGR", 321); err != nil {
		t.Fatal(err)
	}
	var cms *at.CMSError
	if _, err := a.Command(ctx, "AT+CMGR=0"); !errors.As(err, &cms) || cms.Code != 321 {
		t.Errorf("CMGR: err = %v", err)
	}
}

func TestSimTimeoutAndResync(t *testing.T) {
	a, m := simEngine(t)
	ctx := context.Background()
	m.DelayCommand("+COPS", 400*time.Millisecond)
	_, err := a.Command(ctx, "AT+COPS?", at.WithTimeout(100*time.Millisecond))
	if !errors.Is(err, at.ErrTimeout) {
		t.Fatalf("err = %v", err)
	}
	// Whether the late +COPS answer lands before or during the fence, the
	// next command gets its own answer.
	m.DelayCommand("+COPS", 0)
	info, err := a.Command(ctx, "AT+CSQ")
	if err != nil || joined(info) != "+CSQ: 24,99" {
		t.Fatalf("after timeout: info %q err %v", info, err)
	}
	info, err = a.Command(ctx, "AT+COPS?")
	if err != nil || joined(info) != `+COPS: 0,0,"Telekom.de",8` {
		t.Fatalf("COPS: info %q err %v", info, err)
	}
}

func TestSimGarbageAndTruncation(t *testing.T) {
	a, m := simEngine(t, at.WithUnhandled(func([]string) {}))
	ctx := context.Background()
	m.Garbage([]byte("\x00\xff\xfe junk \x1b[0m"))
	if info, err := a.Command(ctx, "AT+CSQ"); err != nil || joined(info) != "+CSQ: 24,99" {
		t.Fatalf("after garbage: info %q err %v", info, err)
	}
	// A truncated answer never gets its final: the command times out and
	// the line is usable again afterwards.
	m.TruncateNext()
	if _, err := a.Command(ctx, "ATI", at.WithTimeout(200*time.Millisecond)); !errors.Is(err, at.ErrTimeout) {
		t.Fatalf("truncated: err = %v", err)
	}
	if info, err := a.Command(ctx, "AT+CSQ"); err != nil || joined(info) != "+CSQ: 24,99" {
		t.Fatalf("after truncation: info %q err %v", info, err)
	}
}

func TestSimStopAfter(t *testing.T) {
	a, m := simEngine(t)
	ctx := context.Background()
	if err := m.StopAfter(1); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Command(ctx, "AT"); err != nil {
		t.Fatal(err)
	}
	_, err := a.Command(ctx, "AT", at.WithTimeout(150*time.Millisecond))
	if !errors.Is(err, at.ErrTimeout) {
		t.Fatalf("err = %v, want timeout", err)
	}
	m.ClearFaults()
	if _, err := a.Command(ctx, "AT"); err != nil {
		t.Fatalf("after clearing: %v", err)
	}
}

func TestSimHangUpMidCommand(t *testing.T) {
	a, m := simEngine(t)
	m.DelayCommand("+COPS", time.Second)
	done := make(chan error, 1)
	go func() {
		_, err := a.Command(context.Background(), "AT+COPS?")
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := m.HangUp(200 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, at.ErrClosed) {
			t.Fatalf("err = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("command not failed by the hang-up")
	}
	<-a.Closed()
	// The owner reopens: a new pty has come up in the old one's place.
	deadline := time.Now().Add(5 * time.Second)
	for {
		sp, err := port.Open(m.PTY(), 115200)
		if err == nil {
			b := at.New(sp)
			defer b.Close()
			if _, err := b.Command(context.Background(), "AT"); err != nil {
				t.Fatalf("after reopening: %v", err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no port after hang-up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSimRebootURCs(t *testing.T) {
	boot := make(urcSink, 8)
	a, _ := simEngine(t)
	for _, p := range []string{"RDY", "+CPIN", "+QIND", "POWERED DOWN", "APP RDY"} {
		a.AddIndication(p, boot.handle)
	}
	if _, err := a.Command(context.Background(), "AT+CFUN=1,1"); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for len(seen) < 5 {
		seen = append(seen, joined(boot.next(t)))
	}
	if got := strings.Join(seen, ";"); got != "POWERED DOWN;RDY;+CPIN: READY;+QIND: SMS DONE;APP RDY" {
		t.Errorf("start-up URCs %q", got)
	}
}
