package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cellagent/modem/bg96emu"
	"cellagent/modem/bg96emu/bg96emutest"
)

type outcome struct {
	code           int
	stdout, stderr string
}

func cli(t *testing.T, stdin string, args ...string) outcome {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb}, args)
	return outcome{code, out.String(), errb.String()}
}

func startSim(t *testing.T) *bg96emu.Modem {
	t.Helper()
	return bg96emutest.Start(t, bg96emu.Config{BootDelay: 200 * time.Millisecond, RegisterDelay: 100 * time.Millisecond})
}

func TestATOneShot(t *testing.T) {
	m := startSim(t)
	o := cli(t, "", "at", "--port", m.PTY(), "AT+CSQ")
	if o.code != 0 || o.stdout != "+CSQ: 24,99\nOK\n" {
		t.Fatalf("code %d stdout %q stderr %q", o.code, o.stdout, o.stderr)
	}
	o = cli(t, "", "at", "--port", m.PTY(), "AT+COPS?", "AT+NOSUCH", "AT")
	if o.code != 1 || o.stdout != "+COPS: 0,0,\"Telekom.de\",8\nOK\n" || !strings.Contains(o.stderr, "AT+NOSUCH: ERROR") {
		t.Fatalf("code %d stdout %q stderr %q", o.code, o.stdout, o.stderr)
	}
	if err := m.CMEErrorOn("+CSQ", 10); err != nil {
		t.Fatal(err)
	}
	o = cli(t, "", "at", "--port", m.PTY(), "AT+CMEE=2", "AT+CSQ")
	if o.code != 1 || !strings.Contains(o.stderr, "+CME ERROR: 10 (SIM not inserted)") {
		t.Fatalf("code %d stderr %q", o.code, o.stderr)
	}
}

func TestATInteractive(t *testing.T) {
	m := startSim(t)
	// Echo stays on: the session must hide it. A message stored while the
	// session waits for input is announced with +CMTI, which is printed.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stdin, feed := io.Pipe()
	var out lockedBuffer
	var errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, &env{stdin: stdin, stdout: &out, stderr: &errb}, []string{"at", "--port", m.PTY()})
	}()
	waitFor := func(want string) {
		t.Helper()
		for !strings.Contains(out.String(), want) {
			select {
			case code := <-done:
				t.Fatalf("session ended (%d) before printing %q: stdout %q stderr %q", code, want, out.String(), errb.String())
			case <-ctx.Done():
				t.Fatalf("no %q in %q", want, out.String())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	if _, err := io.WriteString(feed, "AT+CGSN\n\nAT+FOO\n"); err != nil {
		t.Fatal(err)
	}
	waitFor("ERROR\n")
	if err := m.DeliverText("+491701234567", "hi"); err != nil {
		t.Fatal(err)
	}
	waitFor("+CMTI: ")
	_ = feed.Close()
	if code := <-done; code != 0 {
		t.Fatalf("code %d stderr %q", code, errb.String())
	}
	if want := "866425031234567\nOK\nERROR\n+CMTI: \"SM\","; !strings.HasPrefix(out.String(), want) {
		t.Errorf("stdout %q, want %q...", out.String(), want)
	}
}

// lockedBuffer is a bytes.Buffer a test may read while the session writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestATSMSBody(t *testing.T) {
	m := startSim(t)
	const pdu = "0011000B911326880736F40000A70341E211"
	o := cli(t, "", "at", "--port", m.PTY(), "--body", pdu, "AT+CMGS=17")
	if o.code != 0 || !strings.HasPrefix(o.stdout, "+CMGS: ") {
		t.Fatalf("code %d stdout %q stderr %q", o.code, o.stdout, o.stderr)
	}
	if sent := m.SentMessages(); len(sent) != 1 || sent[0].To != "+31628870634" {
		t.Errorf("sent %+v", sent)
	}
	o = cli(t, "AT+CMGS=17\n"+pdu+"\n", "at", "--port", m.PTY())
	if o.code != 0 || !strings.Contains(o.stdout, "> +CMGS: ") {
		t.Fatalf("interactive: code %d stdout %q stderr %q", o.code, o.stdout, o.stderr)
	}
}

func TestStatus(t *testing.T) {
	m := startSim(t)
	o := cli(t, "", "status", "--port", m.PTY())
	if o.code != 0 {
		t.Fatalf("code %d stderr %q", o.code, o.stderr)
	}
	for _, want := range []string{"866425031234567", "89882280666012345678", "Telekom.de", "yes (home, by CEREG)", "CEREG", "LTE BAND 20", "RSRP -95 dBm"} {
		if !strings.Contains(o.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, o.stdout)
		}
	}
	o = cli(t, "", "status", "--port", m.PTY(), "--json")
	var st struct {
		Identity   struct{ IMEI, ICCID string }
		Registered bool
		Signal     struct {
			QCSQ struct {
				RSRP *int `json:"rsrp_dbm"`
			}
		}
	}
	if err := json.Unmarshal([]byte(o.stdout), &st); err != nil {
		t.Fatalf("json: %v\n%s", err, o.stdout)
	}
	if st.Identity.IMEI != "866425031234567" || !st.Registered || st.Signal.QCSQ.RSRP == nil || *st.Signal.QCSQ.RSRP != -95 {
		t.Errorf("json status %+v", st)
	}
}

func TestStatusUnknownSignal(t *testing.T) {
	m := startSim(t)
	if err := m.SetSignal(bg96emu.NoService); err != nil {
		t.Fatal(err)
	}
	o := cli(t, "", "status", "--port", m.PTY(), "--json")
	if o.code != 0 || strings.Contains(o.stdout, "rssi") || !strings.Contains(o.stdout, `"signal":{"csq":{},"qcsq":{"mode":"NOSERVICE"}}`) {
		t.Errorf("unknown signal reported as a number: %s", o.stdout)
	}
}

func TestErrors(t *testing.T) {
	m := startSim(t)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, ""},
		{[]string{"nosuch"}, 2, `unknown command "nosuch"`},
		{[]string{"at", "--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"at", "AT"}, 2, "--port is required"},
		{[]string{"status", "--port", "/dev/nonexistent-ttyX"}, 1, "no such port"},
		{[]string{"at", "--port", "/dev/nonexistent-ttyX", "AT"}, 1, "no such port"},
		{[]string{"status", "--port", m.PTY(), "--watch", "1ms"}, 2, "want at least 100ms"},
		{[]string{"sim"}, 2, `unknown command "sim"`},
		{[]string{"version", "extra"}, 2, "unexpected arguments"},
	}
	for _, c := range cases {
		o := cli(t, "", c.args...)
		if o.code != c.code || !strings.Contains(o.stderr, c.want) {
			t.Errorf("%v: code %d stderr %q, want %d and %q", c.args, o.code, o.stderr, c.code, c.want)
		}
	}
	m.Silence(true)
	o := cli(t, "", "status", "--port", m.PTY(), "--wait", "2s")
	if o.code != 1 || !strings.Contains(o.stderr, "modem not answering on "+m.PTY()) {
		t.Errorf("silent modem: code %d stderr %q", o.code, o.stderr)
	}
}

func TestHelp(t *testing.T) {
	for _, c := range []string{"at", "status", "config", "version"} {
		o := cli(t, "", c, "--help")
		if o.code != 0 || strings.Count(o.stdout, "Usage: cellagent "+c) != 1 {
			t.Errorf("%s --help: code %d stdout %q", c, o.code, o.stdout)
		}
	}
	o := cli(t, "", "--help")
	if o.code != 0 || !strings.Contains(o.stdout, "status") {
		t.Errorf("--help: code %d stdout %q", o.code, o.stdout)
	}
}

// TestBinaryAsUser runs the built binary the way the README tells a new
// user to: a simulator (the bench binary's) behind a symlink, then status
// and at against the symlink.
func TestBinaryAsUser(t *testing.T) {
	bin := testBinary(t)
	dir := t.TempDir()
	link := filepath.Join(dir, "ttyBG96")
	modemCmd := exec.Command(benchBinary(t), "modem", "--symlink", link, "--scenario", "../../testdata/scenarios/basic.scn")
	var modemOut bytes.Buffer
	modemCmd.Stdout = &modemOut
	if err := modemCmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = modemCmd.Process.Signal(os.Interrupt)
		_ = modemCmd.Wait()
		if _, err := os.Lstat(link); err == nil {
			t.Error("simulator left its symlink behind")
		}
		if !strings.Contains(modemOut.String(), "BG96 simulator on /dev/pts/") {
			t.Errorf("modem printed %q", modemOut.String())
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(link); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("simulator link did not appear")
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, err := exec.Command(bin, "status", "--port", link).CombinedOutput()
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	for _, want := range []string{"IMEI", "866425031234567", "ICCID", "Operator", "Registered", "Signal"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	out, err = exec.Command(bin, "at", "--port", link, "AT+CSQ").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "+CSQ: ") || !strings.HasSuffix(string(out), "\nOK\n") {
		t.Errorf("at AT+CSQ: %v\n%q", err, out)
	}
}

func TestConfigCommand(t *testing.T) {
	o := cli(t, "", "config", "example")
	if o.code != 0 || !strings.Contains(o.stdout, "[modem]") {
		t.Fatalf("example: code %d stdout %q", o.code, o.stdout)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	if err := os.WriteFile(good, []byte(o.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	if o := cli(t, "", "config", "check", good); o.code != 0 || !strings.Contains(o.stdout, "ok") {
		t.Errorf("check good: code %d stdout %q stderr %q", o.code, o.stdout, o.stderr)
	}
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[modem]\nbaud = 1234\nspeed = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o = cli(t, "", "config", "check", bad)
	if o.code != 1 || !strings.Contains(o.stdout, "line 2: modem.baud") || !strings.Contains(o.stdout, "line 3: modem.speed: unknown key") {
		t.Errorf("check bad: code %d stdout %q stderr %q", o.code, o.stdout, o.stderr)
	}
	if o := cli(t, "", "config", "frobnicate"); o.code != 2 {
		t.Errorf("bad subcommand: code %d", o.code)
	}
}

func TestATInteractiveQuit(t *testing.T) {
	m := startSim(t)
	o := cli(t, "ATE0\nquit\nAT+CSQ\n", "at", "--port", m.PTY())
	if o.code != 0 || o.stdout != "OK\n" {
		t.Fatalf("code %d stdout %q stderr %q: 'quit' must end the session before AT+CSQ", o.code, o.stdout, o.stderr)
	}
}

// What a new user tripped over on the command line (issue: --version,
// --port shown as required where it is optional, --port auto refused by
// the CLI while run accepts it).
func TestCLIConventions(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		if o := cli(t, "", args...); o.code != 0 || o.stdout != "cellagent "+version+"\n" {
			t.Errorf("%v: code %d stdout %q stderr %q", args, o.code, o.stdout, o.stderr)
		}
	}
	o := cli(t, "", "status", "--help")
	if o.code != 0 || !strings.Contains(o.stdout, "--port") || strings.Contains(o.stdout, "(required)") {
		t.Errorf("status --help: code %d stdout %q", o.code, o.stdout)
	}
	// No BG96 on the USB bus here (or no sysfs): the answer says what
	// was searched, not that a port named "auto" does not exist.
	o = cli(t, "", "at", "--port", "auto", "AT")
	if o.code != 1 || strings.Contains(o.stderr, "open auto") || !strings.Contains(o.stderr, "BG96") {
		t.Errorf("at --port auto: code %d stderr %q", o.code, o.stderr)
	}
}

// Right after a power-up or a reboot the modem ignores commands for
// seconds, then prints its start-up URCs and answers SIM commands with
// SIM busy for a while: status, sms and at wait for it, as run does,
// instead of failing with "modem not answering" or an ICCID error.
func TestCLIBootingModem(t *testing.T) {
	m := bg96emutest.Start(t, bg96emu.Config{BootDelay: 3 * time.Second, SIMBusy: 1500 * time.Millisecond, RegisterDelay: 100 * time.Millisecond})
	for _, args := range [][]string{
		{"status", "--port", m.PTY()},
		{"sms", "list", "--port", m.PTY()},
		{"at", "--port", m.PTY(), "AT+QCCID"},
	} {
		m.Reboot()
		start := time.Now()
		o := cli(t, "", args...)
		took := time.Since(start)
		if o.code != 0 || strings.Contains(o.stdout, "! ") {
			t.Errorf("%v on a booting modem: code %d after %s\nstdout %q\nstderr %q", args, o.code, took, o.stdout, o.stderr)
		}
		if args[0] == "status" && !strings.Contains(o.stdout, m.ICCID()) {
			t.Errorf("status on a booting modem shows no ICCID:\n%s", o.stdout)
		}
		if args[0] == "at" && !strings.Contains(o.stdout, "+QCCID: "+m.ICCID()) {
			t.Errorf("at AT+QCCID on a booting modem: %q", o.stdout)
		}
		t.Logf("%v: answered after %s", args, took.Round(100*time.Millisecond))
	}
	// A modem that never comes up: bounded by --wait.
	m.PowerOff()
	o := cli(t, "", "status", "--port", m.PTY(), "--wait", "2s")
	if o.code != 1 || !strings.Contains(o.stderr, "not answering on "+m.PTY()+" within --wait 2s") {
		t.Errorf("powered-off modem: code %d stderr %q", o.code, o.stderr)
	}
}

// A program killed mid-command leaves its answer on the line: the next
// `at` must not print it as the answer to its own command.
func TestATIgnoresAnEarlierOwnersLateAnswer(t *testing.T) {
	m := startSim(t)
	if o := cli(t, "", "at", "--port", m.PTY(), "AT"); o.code != 0 {
		t.Fatalf("modem not ready: %d %q", o.code, o.stderr)
	}
	m.DelayCommand("+CIMI", 500*time.Millisecond)
	f, err := os.OpenFile(m.PTY(), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("AT+CIMI\r"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	o := cli(t, "", "at", "--port", m.PTY(), "AT+CSQ")
	if o.code != 0 || o.stdout != "+CSQ: 24,99\nOK\n" {
		t.Fatalf("code %d stdout %q stderr %q", o.code, o.stdout, o.stderr)
	}
}
