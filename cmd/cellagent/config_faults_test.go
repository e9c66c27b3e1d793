package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A configuration is a few KiB of text in a regular file: /dev/zero, a
// huge file or a FIFO must be refused at once, not read until memory runs
// out or a writer appears.
func TestConfigRefusesOddFiles(t *testing.T) {
	bin := testBinary(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.toml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge.toml")
	if err := os.WriteFile(huge, []byte("# "+strings.Repeat("x", 1<<20)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{
		{fifo, "not a regular file"},
		{"/dev/zero", "not a regular file"},
		{huge, "more than the 65536"},
	} {
		for _, args := range [][]string{{"config", "check", c.path}, {"run", "--config", c.path, "--state-dir", dir}} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
			timedOut := ctx.Err() != nil
			cancel()
			var ee *exec.ExitError
			if timedOut || !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), c.want) {
				t.Errorf("%v: err %v (timed out: %v), output %q; want exit 1 saying %q", args, err, timedOut, out, c.want)
			}
		}
	}
}

// runRefusal is a setting `run` refuses; check must refuse it too, or a
// service passes its pre-start check and then crash-loops.
type runRefusal struct {
	name string
	set  map[string]string // section.key → TOML value
}

// configText writes the base configuration with set applied over it.
func configText(set map[string]string) string {
	sections := map[string]map[string]string{
		"device": {"id": `"gw-test"`},
		"modem":  {"port": `"/nonexistent/ttyBG96"`},
		"mqtt":   {"broker": `"tcp://127.0.0.1:9"`, "allow_plaintext": "true"},
	}
	for k, v := range set {
		sec, key, _ := strings.Cut(k, ".")
		if sections[sec] == nil {
			sections[sec] = map[string]string{}
		}
		if v == "" {
			delete(sections[sec], key)
			continue
		}
		sections[sec][key] = v
	}
	var b strings.Builder
	for _, sec := range sortedKeys(sections) {
		fmt.Fprintf(&b, "[%s]\n", sec)
		for _, k := range sortedKeys(sections[sec]) {
			fmt.Fprintf(&b, "%s = %s\n", k, sections[sec][k])
		}
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Every setting below stops `run`; each must fail `config check` as well.
// The base configuration runs (the control case), so a refusal is the
// setting's doing.
func TestEveryRunRefusalIsFoundByCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the agent")
	}
	embedded := map[string]string{"mqtt.broker": "", "mqtt.allow_plaintext": ""}
	with := func(a, b map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range a {
			m[k] = v
		}
		for k, v := range b {
			m[k] = v
		}
		return m
	}
	cases := []runRefusal{
		{"device id with a wildcard", map[string]string{"device.id": `"gw/1#"`}},
		{"device id with a space", map[string]string{"device.id": `"gw 1"`}},
		{"device id too long", map[string]string{"device.id": `"` + strings.Repeat("g", 65) + `"`}},
		{"embedded broker not on loopback", with(embedded, map[string]string{"mqtt.embedded_listen": `"0.0.0.0:23103"`})},
		{"embedded broker on a host name", with(embedded, map[string]string{"mqtt.embedded_listen": `"gateway.local:23103"`})},
		{"broker URL with credentials", map[string]string{"mqtt.broker": `"tcp://user:pw@127.0.0.1:9"`}},
		{"broker URL with a path", map[string]string{"mqtt.broker": `"tcp://127.0.0.1:9/mqtt"`}},
		{"mqtts scheme", map[string]string{"mqtt.broker": `"mqtts://127.0.0.1:9"`}},
		{"TLS files for tcp", map[string]string{"mqtt.ca_file": `"/etc/hostname"`}},
		{"plain tcp not allowed", map[string]string{"mqtt.allow_plaintext": "false"}},
		{"prefix with a leading slash", map[string]string{"mqtt.prefix": `"/fleet"`}},
		{"bsc user with a colon", map[string]string{"bsc.base_url": `"http://127.0.0.1:9"`, "bsc.username": `"a:b"`, "bsc.password_file": `"/etc/hostname"`}},
		{"log level", map[string]string{"log.level": `"INFO+2"`}},
		{"type error", map[string]string{"modem.baud": `"fast"`}},
	}
	dir := t.TempDir()
	try := func(name string, set map[string]string) (runErr, checkErr string) {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".toml")
		if err := os.WriteFile(path, []byte(configText(set)), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		var errb lockedBuffer
		code := run(ctx, &env{stdin: strings.NewReader(""), stdout: &errb, stderr: &errb},
			[]string{"run", "--config", path, "--state-dir", filepath.Join(dir, "state-"+strings.ReplaceAll(name, " ", "-"))})
		if code != 0 || ctx.Err() == nil {
			runErr = fmt.Sprintf("exit %d: %s", code, errb.String())
		}
		if o := cli(t, "", "config", "check", path); o.code != 0 {
			checkErr = o.stdout + o.stderr
		}
		return runErr, checkErr
	}
	if r, c := try("control", nil); r != "" || c != "" {
		t.Fatalf("the base configuration is refused:\nrun: %s\ncheck: %s", r, c)
	}
	for _, c := range cases {
		r, chk := try(c.name, c.set)
		switch {
		case r == "":
			t.Errorf("%s: run accepts it; the case proves nothing", c.name)
		case chk == "":
			t.Errorf("%s: run refuses it (%s) but config check says ok", c.name, strings.TrimSpace(r))
		}
	}
}
