package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cellagent/transport/mqtt/mqtttest"
)

type outcome struct {
	code           int
	stdout, stderr string
}

func cellbench(t *testing.T, args ...string) outcome {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, &env{stdout: &out, stderr: &errb}, args)
	return outcome{code, out.String(), errb.String()}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	pw, openPW := filepath.Join(dir, "pw"), filepath.Join(dir, "open")
	if err := os.WriteFile(pw, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(openPW, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, ""},
		{[]string{"run"}, 2, `unknown command "run"`},
		{[]string{"modem", "--scenario", "/nonexistent.scn"}, 1, "scenario"},
		{[]string{"modem", "--baud", "0"}, 2, "want a positive rate or -1"},
		{[]string{"fleet"}, 2, "--count is required"},
		{[]string{"bsc", "sim"}, 2, `unknown command "bsc"`},
		{[]string{"platform", "--listen", "127.0.0.1:0"}, 2, "give at least one --user"},
		{[]string{"platform", "--user", "admin"}, 2, "want user:passwordfile"},
		{[]string{"platform", "--user", "admin:" + openPW}, 2, "--user: "},
		{[]string{"platform", "--user", "admin:" + pw, "--ca-out", filepath.Join(dir, "ca.pem")}, 2, "--ca-out needs --tls"},
		{[]string{"platform", "--user", "admin:" + pw, "--app-url", "localhost:9"}, 2, "--app-url"},
		{[]string{"platform", "--user", "admin:" + pw, "--sim", "12,msisdn=1"}, 2, "--sim: "},
		{[]string{"platform", "--user", "admin:" + pw, "--scenario", "x.scn"}, 2, "--scenario needs --modem-symlink"},
		{[]string{"platform", "--user", "admin:" + pw, "--modem-link", "x"}, 2, "unknown flag: --modem-link"},
	}
	for _, c := range cases {
		o := cellbench(t, c.args...)
		if o.code != c.code || !strings.Contains(o.stderr, c.want) {
			t.Errorf("%v: code %d stderr %q, want %d and %q", c.args, o.code, o.stderr, c.code, c.want)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, name := range []string{"modem", "fleet", "platform"} {
		o := cellbench(t, name, "--help")
		if o.code != 0 || strings.Count(o.stdout, "Usage: cellbench "+name+" ") != 1 || strings.Contains(o.stdout, "--link") {
			t.Errorf("%s --help: code %d stdout %q", name, o.code, o.stdout)
		}
	}
	o := cellbench(t, "--help")
	for _, name := range []string{"modem", "fleet", "platform"} {
		if o.code != 0 || !strings.Contains(o.stdout, "\n  "+name+" ") {
			t.Errorf("--help lacks %s: code %d stdout %q", name, o.code, o.stdout)
		}
	}
	if strings.Contains(o.stdout, "\n  sim ") {
		t.Errorf("--help lists the deprecated sim: %q", o.stdout)
	}
}

// An outside harness runs `cellbench sim --link PATH --scenario FILE`:
// the old command and flag still start the simulator behind the symlink,
// each with a one-line notice on stderr.
func TestDeprecatedSimAndLink(t *testing.T) {
	link := filepath.Join(t.TempDir(), "tty")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Written by the command's goroutine while the test reads.
	var out, errb mqtttest.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, &env{stdout: &out, stderr: &errb}, []string{"sim", "--link", link, "--scenario", "../../testdata/scenarios/basic.scn"})
	}()
	for !strings.Contains(out.String(), "Ctrl-C to stop") {
		select {
		case code := <-done:
			t.Fatalf("exited with %d: stdout %q stderr %q", code, out.String(), errb.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	target, err := os.Readlink(link)
	if err != nil || !strings.HasPrefix(target, "/dev/pts/") {
		t.Errorf("symlink %s -> %q, %v", link, target, err)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit code %d", code)
	}
	want := []string{
		"cellbench: 'cellbench sim' is deprecated; use 'cellbench modem'",
		"Flag --link has been deprecated, use --symlink",
	}
	if got := strings.Split(strings.TrimSpace(errb.String()), "\n"); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("stderr %q, want the lines %q", got, want)
	}
}
