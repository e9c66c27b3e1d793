package bg96emu

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const scenarioDir = "../../testdata/scenarios"

func TestShippedScenariosParse(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(scenarioDir, "*.scn"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc, err := ParseScenario(fh)
		_ = fh.Close()
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if filepath.Base(f) == "demo.scn" && (sc.Loop == 0 || sc.Loop < 60*time.Second || sc.Loop > 120*time.Second) {
			t.Errorf("demo.scn loops every %v, want 60-120 s", sc.Loop)
		}
	}
}

func TestScenarioParseErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"at 1s bogus", "line 1: unknown action \"bogus\""},
		{"# ok\n\nat x signal", "line 3: at: bad duration \"x\""},
		{"at -1s reboot", "negative duration"},
		{"at 1s", "line 1: at wants a duration and an action"},
		{"dance 1s", "unknown directive \"dance\""},
		{"at 1s signal act=5G", "signal: act \"5G\""},
		{"at 1s signal rssi=-50..-90", "rssi: want an integer or lo..hi"},
		{"at 1s signal foo=1", "unknown key \"foo\""},
		{"at 1s signal rssi", "not key=value"},
		{"at 1s signal rssi=1 rssi=2", "given twice"},
		{"at 1s register domain=lte stat=home", "unknown domain \"lte\""},
		{"at 1s register domain=all stat=happy", "stat \"happy\""},
		{"at 1s register domain=all stat=home tac=XYZ", "tac/lac wants"},
		{"at 1s register domain=all stat=home tac=1 lac=2", "tac or lac"},
		{"at 1s register domain=all stat=home act=7", "act \"7\""},
		{"at 1s sms from=+49 text=\"unterminated", "bad quoted string"},
		{"at 1s sms from=abc text=hi", "not a phone number"},
		{"at 1s sms from=+4917", "wants text="},
		{"at 1s sms pdu=0011", "sms: tpdu"},
		{"at 1s sms pdu=00 from=+49", "pdu excludes"},
		{"at 1s fault", "fault: wants a kind"},
		{"at 1s fault melt", "fault melt: unknown fault kind"},
		{"at 1s fault silence maybe", "wants on or off"},
		{"at 1s fault cme cmd=+CSQ", "wants exactly cmd, code"},
		{"at 1s fault cme cmd=+CSQ code=x", "bad cmd"},
		{"at 1s fault hangup for=soon", "bad duration"},
		{"at 1s fault stopafter n=-2", "bad n"},
		{"at 1s fault garbage hex=0", "fault garbage"},
		{"at 1s fault clear now", "takes no arguments"},
		{"at 1s reboot now", "reboot takes no arguments"},
		{"every 0s reboot", "period must be positive"},
		{"loop 0s", "loop: bad duration"},
		{"seed x", "seed:"},
		{"loop 5s\nat 6s reboot", "loop 5s must be longer than the last at"},
	} {
		_, err := ParseScenario(strings.NewReader(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseScenario(%q) = %v, want error containing %q", tc.src, err, tc.want)
		}
	}
}

func TestScenarioRun(t *testing.T) {
	m, h := startModem(t, fastConfig())
	h.echoOff()
	h.cmd("AT+CREG=2", ok())
	fh, err := os.Open(filepath.Join(scenarioDir, "basic.scn"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc, err := ParseScenario(fh)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background(), sc); err != nil {
		t.Fatal(err)
	}
	h.expect("\r\n+CREG: 2\r\n\r\n+CREG: 1,\"00A1\",\"0000BEEF\",0\r\n\r\n+CMTI: \"SM\",0\r\n")
	h.cmd("AT+QCSQ", ok(`+QCSQ: "GSM",-71`))
}

func TestScenarioLoopAndWalk(t *testing.T) {
	m, _ := startModem(t, fastConfig())
	src := "seed 3\nloop 40ms\nat 0s signal act=CAT-M1 rssi=-70\nevery 10ms signal rsrp=-110..-80 sinr=-3..20\n"
	sc, err := ParseScenario(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := m.Run(ctx, sc); err != context.DeadlineExceeded {
		t.Fatalf("Run = %v, want the context's deadline", err)
	}
	m.mu.Lock()
	s := m.st.sig
	m.mu.Unlock()
	if s.Act != "CAT-M1" || s.RSSI != -70 || s.RSRP < -110 || s.RSRP > -80 || s.SINR < -3 || s.SINR > 20 {
		t.Errorf("signal after walk: %+v", s)
	}
}

func TestScenarioFaults(t *testing.T) {
	m, h := startModem(t, fastConfig())
	fh, err := os.Open(filepath.Join(scenarioDir, "faults.scn"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc, err := ParseScenario(fh)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background(), sc); err != nil {
		t.Fatal(err)
	}
	h.expect("\x00\xff\r\nNO CARRIER\r\n")
	h.send("AT+CSQ\r")
	h.expect("AT+CSQ\r\r\n+CSQ: 24,99\r\n\r\nOK\r\n") // cleared at 10ms
}

func FuzzParseScenario(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(scenarioDir, "*.scn"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(string(b))
		}
	}
	f.Fuzz(func(t *testing.T, src string) {
		sc, err := ParseScenario(strings.NewReader(src))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "scenario") {
				t.Fatalf("error without context: %v", err)
			}
			return
		}
		for _, ev := range sc.Events {
			if ev.act == nil || ev.Line < 1 || ev.At < 0 || ev.Every < 0 {
				t.Fatalf("bad event %+v", ev)
			}
		}
	})
}

func FuzzCommandLine(f *testing.F) {
	for _, s := range []string{"AT", "ATE0", "AT&FZE0", `AT+CSCA="+49",145`, "AT+CMGS=20", "AT+CEREG=2;+CREG?", "AT+CMGD=0,4", "at+cops=3,2", `AT+CPMS="SM","SM"`, "AT+CFUN=1,1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		m := New(Config{BootDelay: time.Hour, RegisterDelay: time.Hour})
		m.ctx = context.Background()
		cmds, err := parseLine(line)
		if err != nil {
			return
		}
		m.mu.Lock()
		r := m.execLocked(cmds)
		m.mu.Unlock()
		if r.final != "" && !strings.Contains(r.final, "ERROR") && r.final != "POWERED DOWN" {
			t.Fatalf("odd final %q for %q", r.final, line)
		}
	})
}
