package bg96

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"cellagent/modem/at"
)

func okScript(cmds ...string) map[string][]string {
	s := map[string][]string{}
	for _, c := range cmds {
		s[c] = []string{"\r\nOK\r\n"}
	}
	return s
}

var initCmds = []string{
	"ATE0", "AT+CMEE=2", "AT+CMGF=0", "AT+CNMI=2,1,0,1,0",
	"AT+CREG=2", "AT+CGREG=2", "AT+CEREG=2", "AT+CTZR=2",
	`AT+CSCA="+882285000016860",145`, `AT+CPMS="SM","SM","SM"`,
}

func TestScript(t *testing.T) {
	steps, err := Script(InitConfig{SMSC: OperatorSMSC})
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, s := range steps {
		cmds = append(cmds, s.Cmd)
		if s.Why == "" || s.Timeout <= 0 {
			t.Errorf("step %s lacks why or timeout", s.Cmd)
		}
	}
	if !reflect.DeepEqual(cmds, initCmds) {
		t.Errorf("script %q, want %q", cmds, initCmds)
	}
	steps, _ = Script(InitConfig{})
	for _, s := range steps {
		if strings.HasPrefix(s.Cmd, "AT+CSCA") {
			t.Error("CSCA step without a configured SMSC")
		}
	}
	if _, err := Script(InitConfig{SMSC: "+49 abc"}); err == nil || !strings.Contains(err.Error(), "+49 abc") {
		t.Errorf("bad SMSC: %v", err)
	}
}

func TestNormalizeSMSC(t *testing.T) {
	for _, tc := range []struct {
		in   string
		num  string
		toa  int
		fail bool
	}{
		{"+882 285 00001 6860", "+882285000016860", 145, false},
		{" 0171-1234567 ", "01711234567", 129, false},
		{"+", "", 0, true},
		{"", "", 0, true},
		{"+49\"1", "", 0, true},
		{"123456789012345678901", "", 0, true},
	} {
		num, toa, err := NormalizeSMSC(tc.in)
		if (err != nil) != tc.fail || num != tc.num || toa != tc.toa {
			t.Errorf("NormalizeSMSC(%q) = %q, %d, %v", tc.in, num, toa, err)
		}
	}
}

func TestInitRunsScriptOverPTY(t *testing.T) {
	s := okScript(initCmds...)
	// Echo still on at first, as after power-up (TinyGSM #157).
	s["ATE0"] = []string{"ATE0\r\r\nOK\r\n"}
	a, r := newLink(t, s)
	if err := Init(ctxT(t), a, InitConfig{SMSC: OperatorSMSC}); err != nil {
		t.Fatal(err)
	}
	if got := r.commands(); !reflect.DeepEqual(got, initCmds) {
		t.Errorf("sent %q, want %q", got, initCmds)
	}
}

func TestInitOptionalFailureContinues(t *testing.T) {
	s := okScript(initCmds...)
	s["AT+CEREG=2"] = []string{"\r\nERROR\r\n"} // a GSM-only module
	s["AT+CMEE=2"] = []string{"\r\n+CME ERROR: 4\r\n"}
	a, r := newLink(t, s)
	if err := Init(ctxT(t), a, InitConfig{}); err != nil {
		t.Fatal(err)
	}
	if got := r.commands(); got[len(got)-1] != `AT+CPMS="SM","SM","SM"` {
		t.Errorf("script stopped early: %q", got)
	}
}

func TestInitStopsAtRequiredFailure(t *testing.T) {
	s := okScript(initCmds...)
	// A textual CMS error for CNMI (warthog618/modem PR #8).
	s["AT+CNMI=2,1,0,1,0"] = []string{"\r\n+CMS ERROR: unknown error\r\n"}
	a, r := newLink(t, s)
	err := Init(ctxT(t), a, InitConfig{})
	var se *StepError
	if !errors.As(err, &se) || se.Index != 4 || se.Step.Cmd != "AT+CNMI=2,1,0,1,0" {
		t.Fatalf("err = %v", err)
	}
	var cms *at.CMSError
	if !errors.As(err, &cms) || cms.Code != 500 {
		t.Errorf("err %v does not carry the CMS error", err)
	}
	if !strings.Contains(err.Error(), "init step 4 (AT+CNMI=2,1,0,1,0)") {
		t.Errorf("error does not name the step: %v", err)
	}
	if got := r.commands(); len(got) != 4 {
		t.Errorf("commands after the failure were sent: %q", got)
	}
}

func TestInitStepTimeout(t *testing.T) {
	// Silence to CMGF: the step's own limit applies, and the error says so.
	s := okScript(initCmds...)
	s["AT+CMGF=0"] = []string{""}
	a, _ := newLink(t, s)
	start := time.Now()
	steps := []Step{{Cmd: "AT+CMGF=0", Timeout: 300 * time.Millisecond, Required: true, Why: "test"}}
	err := Run(ctxT(t), a, steps, nil)
	if !errors.Is(err, at.ErrTimeout) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("step limit not applied: took %v", d)
	}
}

func TestWaitReadyAlreadyUp(t *testing.T) {
	a, _ := newLink(t, nil)
	if err := WaitReady(ctxT(t), a, a); err != nil {
		t.Fatal(err)
	}
}

func TestWaitReadyBooting(t *testing.T) {
	// The booting modem ignores AT, then prints the start-up URCs (TinyGSM
	// #157).
	a, r := newLink(t, map[string][]string{"AT": {"", "\r\nOK\r\n"}})
	r.setHook(func(cmd string) {
		if cmd == "AT" {
			r.setHook(nil)
			go func() {
				time.Sleep(100 * time.Millisecond)
				r.write("\r\nRDY\r\n")
				time.Sleep(100 * time.Millisecond)
				r.write("\r\n+CPIN: READY\r\n\r\n+QIND: PB DONE\r\n")
				time.Sleep(100 * time.Millisecond)
				r.write("\r\n+QIND: SMS DONE\r\n")
			}()
		}
	})
	if err := WaitReady(ctxT(t), a, a); err != nil {
		t.Fatal(err)
	}
}

func TestWaitReadyBootingIgnoresOKBeforeSIM(t *testing.T) {
	// Once RDY is seen, the modem is booting: AT answers are no longer
	// enough, the SIM must report ready.
	a, r := newLink(t, map[string][]string{"AT": {"", "\r\nOK\r\n"}})
	r.setHook(func(string) {
		r.setHook(nil)
		r.write("\r\nRDY\r\n")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	err := WaitReady(ctx, a, a)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "saw RDY; still waiting for +CPIN: READY, +QIND: SMS DONE") {
		t.Errorf("error does not say what is missing: %v", err)
	}
}

func TestWaitReadySIMLocked(t *testing.T) {
	a, r := newLink(t, map[string][]string{"AT": {""}})
	r.setHook(func(string) {
		r.setHook(nil)
		r.write("\r\nRDY\r\n\r\n+CPIN: SIM PIN\r\n")
	})
	err := WaitReady(ctxT(t), a, a)
	if err == nil || !strings.Contains(err.Error(), "SIM is locked (SIM PIN)") {
		t.Fatalf("err = %v", err)
	}
}

func TestWaitReadyClosed(t *testing.T) {
	a, _ := newLink(t, nil)
	_ = a.Close()
	err := WaitReady(ctxT(t), a, a)
	if !errors.Is(err, at.ErrClosed) {
		t.Fatalf("err = %v", err)
	}
}
