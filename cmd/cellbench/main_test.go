package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
		{[]string{"sim", "--scenario", "/nonexistent.scn"}, 1, "scenario"},
		{[]string{"sim", "--baud", "0"}, 2, "want a positive rate or -1"},
		{[]string{"sim", "fleet"}, 2, "--count is required"},
		{[]string{"bsc"}, 2, "missing subcommand: sim"},
		{[]string{"bsc", "quota"}, 2, `unknown subcommand "quota"`},
		{[]string{"bsc", "sim", "--listen", "127.0.0.1:0"}, 2, "give at least one --user"},
		{[]string{"bsc", "sim", "--user", "admin"}, 2, "want user:passwordfile"},
		{[]string{"bsc", "sim", "--user", "admin:" + openPW}, 2, "--user: "},
		{[]string{"bsc", "sim", "--user", "admin:" + pw, "--ca-out", filepath.Join(dir, "ca.pem")}, 2, "--ca-out needs --tls"},
		{[]string{"bsc", "sim", "--user", "admin:" + pw, "--app-url", "localhost:9"}, 2, "--app-url"},
		{[]string{"bsc", "sim", "--user", "admin:" + pw, "--sim", "12,msisdn=1"}, 2, "--sim: "},
		{[]string{"bsc", "sim", "--user", "admin:" + pw, "--scenario", "x.scn"}, 2, "--scenario needs --modem-link"},
	}
	for _, c := range cases {
		o := cellbench(t, c.args...)
		if o.code != c.code || !strings.Contains(o.stderr, c.want) {
			t.Errorf("%v: code %d stderr %q, want %d and %q", c.args, o.code, o.stderr, c.code, c.want)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, c := range [][]string{{"sim"}, {"sim", "fleet"}, {"bsc", "sim"}} {
		o := cellbench(t, append(c, "--help")...)
		name := strings.Join(c, " ")
		if o.code != 0 || strings.Count(o.stdout, "Usage: cellbench "+name+" ") != 1 {
			t.Errorf("%s --help: code %d stdout %q", name, o.code, o.stdout)
		}
	}
	o := cellbench(t, "--help")
	if o.code != 0 || !strings.Contains(o.stdout, "sim") || !strings.Contains(o.stdout, "bsc") {
		t.Errorf("--help: code %d stdout %q", o.code, o.stdout)
	}
}
