package at_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"cellagent/modem/at"
)

func TestAnswerShapes(t *testing.T) {
	// Byte-exact answers as real Quectel modems print them, with echo on and
	// off: information text and the final result code each framed by
	// <CR><LF> (ITU-T V.250, 5.7.1, with verbose result codes).
	cases := []struct {
		name, cmd, answer, want string
	}{
		{"echo off", "AT+CSQ", "\r\n+CSQ: 18,99\r\n\r\nOK\r\n", "+CSQ: 18,99"},
		{"echo on, doubled CR", "AT+QCSQ", "AT+QCSQ\r\r\n+QCSQ: \"eMTC\",-57,-77,225,-7\r\n\r\nOK\r\n", `+QCSQ: "eMTC",-57,-77,225,-7`},
		{"echo on, lower case", "at+qccid", "at+qccid\r\r\n+QCCID: 8910390000040102089F\r\n\r\nOK\r\n", "+QCCID: 8910390000040102089F"},
		{"bare lines", "ATI", "ATI\r\r\nQuectel\r\nBG96\r\nRevision: BG96MAR02A07M1G\r\n\r\nOK\r\n", "Quectel|BG96|Revision: BG96MAR02A07M1G"},
		{"bare IMEI", "AT+CGSN", "\r\n866425030000000\r\n\r\nOK\r\n", "866425030000000"},
		{"no info", "AT", "AT\r\r\nOK\r\n", ""},
		{"indented", "AT+CSQ", "\r\n +CSQ: 28,0\r\n\r\nOK\r\n", "+CSQ: 28,0"},
		{"LF only", "AT+CGATT?", "\n+CGATT: 1\n\nOK\n", "+CGATT: 1"},
		{"pdu listing", "AT+CMGL=4", "\r\n+CMGL: 0,0,,35\r\n07917248014000F3240B917247587706F400003110824115248012C8329BFD06C9C373B8B82C97E741F034\r\n\r\nOK\r\n",
			"+CMGL: 0,0,,35|07917248014000F3240B917247587706F400003110824115248012C8329BFD06C9C373B8B82C97E741F034"},
		{"split across reads", "AT+CSQ", "\r\n+C|SQ: 1|8,99\r|\n\r\nO|K\r\n", "+CSQ: 18,99"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, p := engine(t)
			ch := start(a, context.Background(), c.cmd)
			p.expect(c.cmd + "\r")
			for _, part := range strings.Split(c.answer, "|") {
				p.send(part)
				time.Sleep(2 * time.Millisecond)
			}
			r := wait(t, ch)
			if r.err != nil {
				t.Fatalf("err = %v", r.err)
			}
			if got := joined(r.info); got != c.want {
				t.Errorf("info = %q, want %q", got, c.want)
			}
		})
	}
}

func TestFinalResultCodes(t *testing.T) {
	cases := []struct {
		answer string
		check  func(error) bool
		msg    string
	}{
		{"ERROR", func(err error) bool { return errors.Is(err, at.ErrError) }, "AT+X: ERROR"},
		{"+CME ERROR: 10", func(err error) bool {
			var e *at.CMEError
			return errors.As(err, &e) && e.Code == 10 && e.Text == "SIM not inserted"
		}, "AT+X: +CME ERROR: 10 (SIM not inserted)"},
		{"+CME ERROR: operation not allowed", func(err error) bool {
			var e *at.CMEError
			return errors.As(err, &e) && e.Code == 3
		}, "AT+X: +CME ERROR: 3 (operation not allowed)"},
		{"CME Error: unknown", func(err error) bool {
			var e *at.CMEError
			return errors.As(err, &e) && e.Code == 100
		}, "AT+X: +CME ERROR: 100 (unknown)"},
		{"+CME ERROR: vendor says no", func(err error) bool {
			var e *at.CMEError
			return errors.As(err, &e) && e.Code == -1 && e.Text == "vendor says no"
		}, "AT+X: +CME ERROR: vendor says no"},
		{"+CMS ERROR: 322", func(err error) bool {
			var e *at.CMSError
			return errors.As(err, &e) && e.Code == 322
		}, "AT+X: +CMS ERROR: 322 (memory full)"},
		{"+CMS ERROR: unknown error", func(err error) bool {
			var e *at.CMSError
			return errors.As(err, &e) && e.Code == 500
		}, "AT+X: +CMS ERROR: 500 (unknown error)"},
		{"NO CARRIER", isResult("NO CARRIER"), "AT+X: NO CARRIER"},
		{"BUSY", isResult("BUSY"), "AT+X: BUSY"},
		{"NO ANSWER", isResult("NO ANSWER"), "AT+X: NO ANSWER"},
		{"NO DIALTONE", isResult("NO DIALTONE"), "AT+X: NO DIALTONE"},
		{"SEND FAIL", isResult("SEND FAIL"), "AT+X: SEND FAIL"},
		{"ABORTED", isResult("ABORTED"), "AT+X: ABORTED"},
	}
	a, p := engine(t)
	for _, c := range cases {
		ch := start(a, context.Background(), "AT+X")
		p.respond("AT+X", "\r\n"+c.answer+"\r\n")
		r := wait(t, ch)
		if !c.check(r.err) {
			t.Errorf("%q: err = %#v (%v)", c.answer, r.err, r.err)
		}
		if r.err != nil && r.err.Error() != c.msg {
			t.Errorf("%q: message %q, want %q", c.answer, r.err.Error(), c.msg)
		}
	}
	ch := start(a, context.Background(), "AT+QISEND=0,5")
	p.respond("AT+QISEND=0,5", "\r\nSEND OK\r\n")
	if r := wait(t, ch); r.err != nil {
		t.Errorf("SEND OK: %v", r.err)
	}
}

func isResult(want string) func(error) bool {
	return func(err error) bool {
		var e *at.ResultError
		return errors.As(err, &e) && e.Result == want
	}
}

func TestURCsInterleaved(t *testing.T) {
	cmti := make(urcSink, 4)
	cereg := make(urcSink, 4)
	other := make(urcSink, 4)
	a, p := engine(t, at.WithUnhandled(other.handle))
	a.AddIndication("+CMTI", cmti.handle)
	a.AddIndication("+CEREG", cereg.handle)

	ch := start(a, context.Background(), "AT+CSQ")
	p.respond("AT+CSQ", "\r\n+CEREG: 2\r\n\r\n+CSQ: 18,99\r\n\r\n+CMTI: \"SM\",3\r\n\r\n+QIND: \"csq\",1\r\n\r\nRDY\r\n\r\nOK\r\n")
	r := wait(t, ch)
	if r.err != nil || joined(r.info) != "+CSQ: 18,99" {
		t.Fatalf("info %q err %v", r.info, r.err)
	}
	if got := joined(cereg.next(t)); got != "+CEREG: 2" {
		t.Errorf("CEREG URC %q", got)
	}
	if got := joined(cmti.next(t)); got != `+CMTI: "SM",3` {
		t.Errorf("CMTI URC %q", got)
	}
	if got := joined(other.next(t)); got != `+QIND: "csq",1` {
		t.Errorf("first unhandled %q", got)
	}
	if got := joined(other.next(t)); got != "RDY" {
		t.Errorf("second unhandled %q", got)
	}

	// A query whose answer shares the URC's prefix takes the line itself.
	ch = start(a, context.Background(), "AT+CEREG?")
	p.respond("AT+CEREG?", "\r\n+CEREG: 2,1,\"1A2B\",\"01A2B3C\",8\r\n\r\nOK\r\n")
	if r := wait(t, ch); joined(r.info) != `+CEREG: 2,1,"1A2B","01A2B3C",8` {
		t.Errorf("CEREG? info %q", r.info)
	}
	select {
	case l := <-cereg:
		t.Errorf("query answer leaked to the URC handler: %q", l)
	case <-time.After(50 * time.Millisecond):
	}
}

// With echo on, a URC with the command's own prefix printed just before the
// echo was sent before the modem had the command: it goes to its handler,
// and neither it nor the echo ends up in the answer.
func TestURCBeforeEcho(t *testing.T) {
	creg := make(urcSink, 4)
	a, p := engine(t)
	a.AddIndication("+CREG", creg.handle)
	ch := start(a, context.Background(), "AT+CREG?")
	p.respond("AT+CREG?", "\r\n+CREG: 0\r\nAT+CREG?\r\r\n+CREG: 2,0\r\n\r\nOK\r\n")
	if r := wait(t, ch); r.err != nil || joined(r.info) != "+CREG: 2,0" {
		t.Fatalf("info %q err %v", r.info, r.err)
	}
	if got := joined(creg.next(t)); got != "+CREG: 0" {
		t.Errorf("CREG URC %q", got)
	}
}

func TestTwoLineURC(t *testing.T) {
	const pdu = "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07"
	cmt := make(urcSink, 4)
	a, p := engine(t)
	a.AddIndication("+CMT", cmt.handle)

	// Idle.
	p.send("\r\n+CMT: ,24\r\n" + pdu + "\r\n")
	if got := cmt.next(t); joined(got) != "+CMT: ,24|"+pdu {
		t.Errorf("idle +CMT = %q", got)
	}
	// In the middle of a bare-line answer, where the PDU line would
	// otherwise look like the command's own.
	ch := start(a, context.Background(), "AT+CGSN")
	p.respond("AT+CGSN", "\r\n+CMT: ,24\r\n"+pdu+"\r\n\r\n866425030000000\r\n\r\nOK\r\n")
	if r := wait(t, ch); r.err != nil || joined(r.info) != "866425030000000" {
		t.Errorf("CGSN info %q err %v", r.info, r.err)
	}
	if got := cmt.next(t); joined(got) != "+CMT: ,24|"+pdu {
		t.Errorf("mid-command +CMT = %q", got)
	}
	// +CDS is two-line by default even without a handler: its PDU line must
	// not land in the command's answer.
	ch = start(a, context.Background(), "ATI")
	p.respond("ATI", "\r\n+CDS: 25\r\n0006D60B911326880736F4111011719551401110117195714000\r\nQuectel\r\n\r\nOK\r\n")
	if r := wait(t, ch); joined(r.info) != "Quectel" {
		t.Errorf("ATI info %q", r.info)
	}
}

func TestSMSPrompt(t *testing.T) {
	const body = "0011000B911326880736F40000A70341E211"
	for _, tc := range []struct{ name, prompt, echo string }{
		{"prompt with space", "\r\n> ", ""},
		{"bare prompt", "\r\n>", ""},
		{"echo on", "AT+CMGS=17\r\r\n> ", body + "\x1a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, p := engine(t)
			ch := make(chan result, 1)
			go func() {
				info, err := a.SMSCommand(context.Background(), "AT+CMGS=17", body)
				ch <- result{info, err}
			}()
			p.expect("AT+CMGS=17\r")
			p.send(tc.prompt)
			p.expect(body + "\x1a")
			p.send(tc.echo + "\r\n+CMGS: 42\r\n\r\nOK\r\n")
			r := wait(t, ch)
			if r.err != nil || joined(r.info) != "+CMGS: 42" {
				t.Fatalf("info %q err %v", r.info, r.err)
			}
		})
	}
}

func TestSMSPromptTimeoutSendsESC(t *testing.T) {
	a, p := engine(t)
	ch := make(chan result, 1)
	go func() {
		info, err := a.SMSCommand(context.Background(), "AT+CMGS=17", "00", at.WithTimeout(100*time.Millisecond))
		ch <- result{info, err}
	}()
	p.expect("AT+CMGS=17\r")
	r := wait(t, ch)
	if !errors.Is(r.err, at.ErrTimeout) {
		t.Fatalf("err = %v, want timeout", r.err)
	}
	p.expect("\x1b")
}

// A prompt that comes after its SMS command timed out leaves the modem
// waiting for a body; the engine cancels it rather than let the next
// command become message text.
func TestLatePromptCancelled(t *testing.T) {
	a, p := engine(t)
	_, err := a.SMSCommand(context.Background(), "AT+CMGS=17", "00", at.WithTimeout(100*time.Millisecond))
	if !errors.Is(err, at.ErrTimeout) {
		t.Fatalf("err = %v, want timeout", err)
	}
	p.expect("AT+CMGS=17\r\x1b")
	p.send("\r\n> ")
	p.expect("\x1b")
	ch := start(a, context.Background(), "AT")
	p.respond("\x1b\rAT+CMEE?", "\r\nOK\r\n\r\n+CMEE: 2\r\n\r\nOK\r\n") // the abort's OK, then the fence's answer
	p.respond("AT", "\r\nOK\r\n")
	if r := wait(t, ch); r.err != nil {
		t.Fatalf("AT after the cancelled prompt: %v", r.err)
	}
}

func TestSMSBodyValidated(t *testing.T) {
	a, p := engine(t)
	for _, body := range []string{"", "00\x1a", "00\r\nAT"} {
		if _, err := a.SMSCommand(context.Background(), "AT+CMGS=1", body); err == nil {
			t.Errorf("body %q accepted", body)
		}
	}
	p.quiet(50 * time.Millisecond)
}

func TestTimeoutThenFence(t *testing.T) {
	other := make(urcSink, 4)
	a, p := engine(t, at.WithUnhandled(other.handle))
	_, err := a.Command(context.Background(), "AT+COPS=0", at.WithTimeout(100*time.Millisecond))
	p.expect("AT+COPS=0\r")
	if !errors.Is(err, at.ErrTimeout) {
		t.Fatalf("err = %v, want timeout", err)
	}
	if !strings.Contains(err.Error(), "AT+COPS=0") {
		t.Errorf("error %q does not name the command", err)
	}

	// The late answer arrives only after the fence went out, so the first
	// OK the engine sees is not the fence's.
	ch := start(a, context.Background(), "AT+CSQ")
	p.expect("\x1b\rAT+CMEE?\r")
	p.send("\r\n+COPS: 0,0,\"Telekom.de\",8\r\n\r\nOK\r\n")
	p.send("\r\nRDY\r\n")
	p.send("\r\n+CMEE: 2\r\n\r\nOK\r\n")
	p.respond("AT+CSQ", "\r\n+CSQ: 20,99\r\n\r\nOK\r\n")
	if r := wait(t, ch); r.err != nil || joined(r.info) != "+CSQ: 20,99" {
		t.Fatalf("after fence: info %q err %v", r.info, r.err)
	}
	// The late +COPS line is dropped; a real URC during the fence is not.
	if got := joined(other.next(t)); got != "RDY" {
		t.Errorf("unhandled got %q, want RDY", got)
	}
	// Clean again: no fence before the next command.
	ch = start(a, context.Background(), "AT")
	p.respond("AT", "\r\nOK\r\n")
	if r := wait(t, ch); r.err != nil {
		t.Fatal(r.err)
	}
}

func TestFenceFailsWhileModemSilent(t *testing.T) {
	a, p := engine(t)
	if _, err := a.Command(context.Background(), "AT", at.WithTimeout(50*time.Millisecond)); !errors.Is(err, at.ErrTimeout) {
		t.Fatalf("err = %v", err)
	}
	p.expect("AT\r")
	// The command's own time limit bounds the fence before it.
	_, err := a.Command(context.Background(), "AT+CSQ", at.WithTimeout(100*time.Millisecond))
	p.expect("\x1b\rAT+CMEE?\r")
	if !errors.Is(err, at.ErrTimeout) || !strings.Contains(err.Error(), "resynchronising") {
		t.Fatalf("err = %v, want fence timeout", err)
	}
	// The command itself was never sent to a modem that is not listening.
	p.quiet(50 * time.Millisecond)
}

func TestContextCancel(t *testing.T) {
	a, p := engine(t)
	ctx, cancel := context.WithCancel(context.Background())
	ch := start(a, ctx, "AT+COPS=?")
	p.expect("AT+COPS=?\r")
	cancel()
	r := wait(t, ch)
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("err = %v, want canceled", r.err)
	}
}

func TestHangUpMidCommand(t *testing.T) {
	a, p := engine(t)
	ch := start(a, context.Background(), "AT+COPS?")
	p.expect("AT+COPS?\r")
	p.master.Close()
	r := wait(t, ch)
	if !errors.Is(r.err, at.ErrClosed) {
		t.Fatalf("pending: err = %v, want ErrClosed", r.err)
	}
	select {
	case <-a.Closed():
	case <-time.After(5 * time.Second):
		t.Fatal("Closed() not signalled")
	}
	if !errors.Is(a.Err(), at.ErrClosed) {
		t.Errorf("Err() = %v", a.Err())
	}
	if _, err := a.Command(context.Background(), "AT"); !errors.Is(err, at.ErrClosed) {
		t.Errorf("later: err = %v, want ErrClosed", err)
	}
}

func TestCommandsSerialised(t *testing.T) {
	a, p := engine(t)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			info, err := a.Command(context.Background(), "AT+CSQ")
			if err == nil && joined(info) != "+CSQ: 18,99" {
				err = errors.New("wrong answer " + joined(info))
			}
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		// A second command written before this answer would show up here
		// as unexpected bytes.
		p.respond("AT+CSQ", "\r\n+CSQ: 18,99\r\n\r\nOK\r\n")
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestGarbageAndLongLines(t *testing.T) {
	other := make(urcSink, 8)
	a, p := engine(t, at.WithUnhandled(other.handle))
	p.send("\x00\xff\xfe\r\n")
	if got := joined(other.next(t)); got != "\uFFFD" {
		t.Errorf("garbage delivered as %q", got)
	}
	p.send("\r\n" + strings.Repeat("A", at.MaxLineLength+10) + "\r\n")
	ch := start(a, context.Background(), "AT+CSQ")
	p.respond("AT+CSQ", "\r\n+CSQ: 1,99\r\n\r\nOK\r\n")
	if r := wait(t, ch); r.err != nil || joined(r.info) != "+CSQ: 1,99" {
		t.Fatalf("info %q err %v", r.info, r.err)
	}
	select {
	case l := <-other:
		t.Errorf("over-long line delivered: %d bytes", len(joined(l)))
	default:
	}
}

func TestStrayFinalIgnoredWhenIdle(t *testing.T) {
	other := make(urcSink, 8)
	a, p := engine(t, at.WithUnhandled(other.handle))
	p.send("\r\nOK\r\n\r\n+CME ERROR: 3\r\n\r\nNO CARRIER\r\n")
	if got := joined(other.next(t)); got != "NO CARRIER" {
		t.Errorf("unhandled %q, want NO CARRIER", got)
	}
	ch := start(a, context.Background(), "AT")
	p.respond("AT", "\r\nOK\r\n")
	if r := wait(t, ch); r.err != nil {
		t.Fatal(r.err)
	}
}

func TestInvalidCommand(t *testing.T) {
	a, p := engine(t)
	for _, cmd := range []string{"", "  ", "AT\rAT", "AT\x1a"} {
		if _, err := a.Command(context.Background(), cmd); err == nil {
			t.Errorf("command %q accepted", cmd)
		}
	}
	p.quiet(50 * time.Millisecond)
}

func TestTrace(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, p := engine(t, at.WithTrace(log))
	ch := start(a, context.Background(), "AT+CSQ")
	p.respond("AT+CSQ", "\r\n+CSQ: 18,99\r\n\r\nOK\r\n")
	wait(t, ch)
	mu.Lock()
	defer mu.Unlock()
	out := buf.String()
	for _, want := range []string{`msg="AT tx" bytes="AT+CSQ\r"`, `+CSQ: 18,99`} {
		if !strings.Contains(out, want) {
			t.Errorf("trace lacks %q:\n%s", want, out)
		}
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestURCHandlerMayCommand(t *testing.T) {
	// A +CMTI handler reads the message: handlers run off the reader
	// goroutine, so this must not deadlock.
	a, p := engine(t)
	got := make(chan []string, 1)
	a.AddIndication("+CMTI", func(lines []string) {
		info, err := a.Command(context.Background(), "AT+CMGR=3")
		if err != nil {
			t.Error(err)
		}
		got <- info
	})
	p.send("\r\n+CMTI: \"SM\",3\r\n")
	p.respond("AT+CMGR=3", "\r\n+CMGR: 0,,24\r\n0791\r\n\r\nOK\r\n")
	select {
	case info := <-got:
		if joined(info) != "+CMGR: 0,,24|0791" {
			t.Errorf("info %q", info)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler's command did not complete")
	}
}

func TestLateAnswerWhenIdle(t *testing.T) {
	creg := make(urcSink, 4)
	a, p := engine(t)
	a.AddIndication("+CREG", creg.handle)
	if _, err := a.Command(context.Background(), "AT+CREG?", at.WithTimeout(50*time.Millisecond)); !errors.Is(err, at.ErrTimeout) {
		t.Fatalf("err = %v", err)
	}
	p.expect("AT+CREG?\r")
	// The late answer has the query form; a URC handler would misread
	// "2,1" as stat 2 in LAC 1.
	p.send("\r\n+CREG: 2,1\r\n\r\nOK\r\n")
	p.send("\r\n+CREG: 5\r\n")
	if got := joined(creg.next(t)); got != "+CREG: 5" {
		t.Errorf("URC handler got %q, want only the real URC", got)
	}
	// A late OK does not prove nothing else is outstanding: the next
	// command is fenced all the same.
	ch := start(a, context.Background(), "AT")
	p.respond("\x1b\rAT+CMEE?", "\r\n+CMEE: 2\r\n\r\nOK\r\n")
	p.respond("AT", "\r\nOK\r\n")
	if r := wait(t, ch); r.err != nil {
		t.Fatal(r.err)
	}
}

func TestSeveralHandlersPerPrefix(t *testing.T) {
	one, two := make(urcSink, 4), make(urcSink, 4)
	a, p := engine(t)
	removeOne := a.AddIndication("+CMTI", one.handle)
	a.AddIndication("+CMTI:", two.handle)
	p.send("\r\n+CMTI: \"SM\",1\r\n")
	if joined(one.next(t)) != `+CMTI: "SM",1` || joined(two.next(t)) != `+CMTI: "SM",1` {
		t.Fatal("both handlers must see the URC")
	}
	removeOne()
	p.send("\r\n+CMTI: \"SM\",2\r\n")
	if got := joined(two.next(t)); got != `+CMTI: "SM",2` {
		t.Errorf("remaining handler got %q", got)
	}
	select {
	case l := <-one:
		t.Errorf("removed handler still called with %q", l)
	case <-time.After(50 * time.Millisecond):
	}
}

// A URC queued behind a slow handler is not delivered to a handler removed
// in the meantime: after remove returns, the owner may drop what the
// handler writes to.
func TestRemovedHandlerSkipsQueuedURC(t *testing.T) {
	a, p := engine(t)
	started, release := make(chan struct{}), make(chan struct{})
	x := make(urcSink, 4)
	a.AddIndication("+X", func(lines []string) {
		if lines[0] == "+X: 1" {
			close(started)
			<-release
		}
		x.handle(lines)
	})
	y := make(urcSink, 4)
	removeY := a.AddIndication("+Y", y.handle)
	p.send("\r\n+X: 1\r\n")
	<-started
	// The reader routes in order: once AT has its OK, +Y: 1 is queued.
	ch := start(a, context.Background(), "AT")
	p.respond("AT", "\r\n+Y: 1\r\n\r\nOK\r\n")
	if r := wait(t, ch); r.err != nil {
		t.Fatal(r.err)
	}
	removeY()
	close(release)
	p.send("\r\n+X: 2\r\n")
	x.next(t)
	if got := joined(x.next(t)); got != "+X: 2" {
		t.Fatalf("second +X URC %q", got)
	}
	select {
	case l := <-y:
		t.Errorf("removed handler called with %q", l)
	default:
	}
}

func TestFenceAfterTwoTimeouts(t *testing.T) {
	a, p := engine(t)
	ctx := context.Background()
	if _, err := a.Command(ctx, "AT+COPS=0", at.WithTimeout(50*time.Millisecond)); !errors.Is(err, at.ErrTimeout) {
		t.Fatalf("err = %v", err)
	}
	p.expect("AT+COPS=0\r")
	// The fence times out too: the modem is still busy.
	if _, err := a.Command(ctx, "AT+CSQ", at.WithTimeout(100*time.Millisecond)); !errors.Is(err, at.ErrTimeout) {
		t.Fatalf("err = %v", err)
	}
	p.expect("\x1b\rAT+CMEE?\r")
	// Now both late answers come, after the next fence went out. That fence
	// first sees the earlier fence's "+CMEE:" and OK, then its own answer
	// while settling, so it must fence once more before the command.
	ch := start(a, ctx, "AT+CSQ")
	p.expect("\x1b\rAT+CMEE?\r")
	p.send("\r\nOK\r\n\r\n+CMEE: 2\r\n\r\nOK\r\n")
	p.send("\r\n+CMEE: 2\r\n\r\nOK\r\n")
	p.respond("\x1b\rAT+CMEE?", "\r\n+CMEE: 2\r\n\r\nOK\r\n")
	p.respond("AT+CSQ", "\r\n+CSQ: 7,99\r\n\r\nOK\r\n")
	if r := wait(t, ch); r.err != nil || joined(r.info) != "+CSQ: 7,99" {
		t.Fatalf("info %q err %v", r.info, r.err)
	}
}

func TestInitialFence(t *testing.T) {
	a, p := engine(t, at.WithInitialFence())
	ch := start(a, context.Background(), "AT+CMGD=3")
	// What a killed predecessor left unanswered comes first.
	p.expect("\x1b\rAT+CMEE?\r")
	p.send("\r\nOK\r\n\r\n+CMEE: 2\r\n\r\nOK\r\n")
	p.respond("AT+CMGD=3", "\r\n+CMS ERROR: 321\r\n")
	var cms *at.CMSError
	if r := wait(t, ch); !errors.As(r.err, &cms) || cms.Code != 321 {
		t.Fatalf("err = %v, want the command's own +CMS ERROR, not the stale OK", r.err)
	}
}
