package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// journaldLine splits a line as journald's stream reader does with
// SyslogLevelPrefix= on: a leading "<N>" (0-7) is the priority and is cut;
// without it the priority is the stream's default, info (6).
func journaldLine(line string) (prio int, msg string) {
	if len(line) >= 3 && line[0] == '<' && line[2] == '>' && line[1] >= '0' && line[1] <= '7' {
		return int(line[1] - '0'), line[3:]
	}
	return 6, line
}

// runService runs `cellagent run` on a port that does not exist and a
// broker that refuses, so it logs at every level, with its stderr in a
// file; journal sets JOURNAL_STREAM to that file as systemd would.
func runService(t *testing.T, journal bool) []string {
	t.Helper()
	bin := testBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("[modem]\nport = %q\n[state]\ndir = %q\n[mqtt]\nbroker = \"tcp://127.0.0.1:1\"\nallow_plaintext = true\n[log]\nlevel = \"debug\"\n",
		filepath.Join(dir, "ttyNone"), filepath.Join(dir, "state"))), 0o600); err != nil {
		t.Fatal(err)
	}
	errf, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	cmd := exec.Command(bin, "run", "--config", cfg, "--runtime-dir", dir)
	cmd.Stderr = errf
	cmd.Env = os.Environ()
	if journal {
		var st syscall.Stat_t
		if err := syscall.Fstat(int(errf.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(cmd.Env, fmt.Sprintf("JOURNAL_STREAM=%d:%d", st.Dev, st.Ino))
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	b, err := os.ReadFile(errf.Name())
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// Under systemd each log line reaches the journal with its level's
// priority, so `journalctl -p warning` finds the warnings; elsewhere the
// lines are plain text with a time.
func TestJournalPriorities(t *testing.T) {
	if c, err := net.Dial("unixgram", journalSocketPath); err == nil {
		c.Close()
		t.Skip("journald's socket is reachable here, so the service logs to it, not to stderr (TestJournalNative covers that)")
	}
	want := map[string]int{"DEBUG": 7, "INFO": 6, "WARN": 4, "ERROR": 3}
	level := regexp.MustCompile(`^level=([A-Z]+) `)
	seen := map[int]bool{}
	for _, line := range runService(t, true) {
		prio, msg := journaldLine(line)
		m := level.FindStringSubmatch(msg)
		if m == nil {
			t.Errorf("line not as expected after its priority (no time, level first): %q", line)
			continue
		}
		if want[m[1]] != prio {
			t.Errorf("journal priority %d for a %s line: %q", prio, m[1], line)
		}
		seen[prio] = true
	}
	if !seen[4] || !seen[6] {
		t.Errorf("expected warnings and info lines in the journal, got priorities %v", seen)
	}

	for _, line := range runService(t, false) {
		if _, err := strconv.Atoi(line[1:2]); line[0] == '<' && err == nil {
			t.Errorf("priority prefix outside the journal: %q", line)
		}
		if !strings.HasPrefix(line, "time=") {
			t.Errorf("plain line without its time: %q", line)
		}
	}
}

// fakeJournald is a unixgram socket in a temp dir standing in for
// journald's native socket.
func fakeJournald(t *testing.T) (*net.UnixConn, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "socket")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, path
}

// receiveEntry reads one entry as journald does: a datagram, or a
// datagram carrying a sealed memfd whose contents are the entry.
func receiveEntry(t *testing.T, c *net.UnixConn) (fields map[string][]string, viaMemfd bool) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	b, oob := make([]byte, 1<<16), make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := c.ReadMsgUnix(b, oob)
	if err != nil {
		t.Fatalf("no entry: %v", err)
	}
	b = b[:n]
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			t.Fatalf("control message: %v %v", msgs, err)
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			t.Fatalf("rights: %v %v", fds, err)
		}
		f := os.NewFile(uintptr(fds[0]), "entry")
		defer f.Close()
		seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
		if want := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE; err != nil || seals&want != want {
			t.Errorf("memfd not sealed as journald requires: %#x %v", seals, err)
		}
		st, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		// From the start, as journald maps it: the offset is the sender's.
		if b, err = io.ReadAll(io.NewSectionReader(f, 0, st.Size())); err != nil {
			t.Fatal(err)
		}
		viaMemfd = true
	}
	fields, err = parseJournalNative(b)
	if err != nil {
		t.Fatalf("%v in %q", err, b)
	}
	return fields, viaMemfd
}

// parseJournalNative parses an entry of the native protocol: "NAME=value\n",
// or "NAME\n", the value's length as 64-bit little-endian, the value and
// "\n"; names as journald accepts them.
func parseJournalNative(b []byte) (map[string][]string, error) {
	name := regexp.MustCompile(`^[A-Z0-9][A-Z0-9_]{0,63}$`)
	fields := map[string][]string{}
	for len(b) > 0 {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			return nil, fmt.Errorf("field without its newline")
		}
		var k, v string
		if eq := bytes.IndexByte(b[:nl], '='); eq >= 0 {
			k, v, b = string(b[:eq]), string(b[eq+1:nl]), b[nl+1:]
		} else {
			k, b = string(b[:nl]), b[nl+1:]
			if len(b) < 8 {
				return nil, fmt.Errorf("%s: binary field without its length", k)
			}
			n := binary.LittleEndian.Uint64(b)
			if uint64(len(b)-8) < n+1 || b[8+n] != '\n' {
				return nil, fmt.Errorf("%s: binary field of %d bytes not followed by a newline", k, n)
			}
			v, b = string(b[8:8+n]), b[8+n+1:]
		}
		if !name.MatchString(k) || k[0] >= '0' && k[0] <= '9' {
			return nil, fmt.Errorf("field name journald refuses: %q", k)
		}
		fields[k] = append(fields[k], v)
	}
	return fields, nil
}

// Under systemd with journald's socket reachable, each record is a
// native entry: its priority per level, the message with its attributes
// as journalctl shows it, and each attribute as a field of its own.
func TestJournalNative(t *testing.T) {
	jd, path := fakeJournald(t)
	var stderr bytes.Buffer
	lv := new(slog.LevelVar)
	lv.Set(slog.LevelDebug)
	log := slog.New(newJournalHandler(&stderr, lv, path))

	for _, c := range []struct {
		level slog.Level
		prio  string
	}{{slog.LevelDebug, "7"}, {slog.LevelInfo, "6"}, {slog.LevelWarn, "4"}, {slog.LevelError, "3"}} {
		log.Log(context.Background(), c.level, "link down", "port", "/dev/ttyUSB2")
		f, _ := receiveEntry(t, jd)
		if got := f["PRIORITY"]; len(got) != 1 || got[0] != c.prio {
			t.Errorf("%v: PRIORITY %q, want %s", c.level, got, c.prio)
		}
		if got := f["MESSAGE"]; len(got) != 1 || got[0] != "link down port=/dev/ttyUSB2" {
			t.Errorf("%v: MESSAGE %q", c.level, got)
		}
		if got := f["PORT"]; len(got) != 1 || got[0] != "/dev/ttyUSB2" {
			t.Errorf("%v: PORT %q", c.level, got)
		}
		if got := f["SYSLOG_IDENTIFIER"]; len(got) != 1 || got[0] != "cellagent" {
			t.Errorf("SYSLOG_IDENTIFIER %q", got)
		}
		if got := f["CODE_FUNC"]; len(got) != 1 || !strings.HasSuffix(got[0], ".TestJournalNative") {
			t.Errorf("CODE_FUNC %q", got)
		}
		if got := f["CODE_FILE"]; len(got) != 1 || filepath.Base(got[0]) != "journal_test.go" {
			t.Errorf("CODE_FILE %q", got)
		}
	}

	lv.Set(slog.LevelInfo)
	log.Debug("not at info")
	log.With("session", 3).WithGroup("mqtt").Warn("refused",
		"broker", "tcp://127.0.0.1:1", "err", "first line\nsecond line",
		slog.Group("tls", "server-name", "fleet.example"), "_trusted", "x", "message", "mine")
	f, _ := receiveEntry(t, jd)
	for k, want := range map[string]string{
		"SESSION":              "3",
		"MQTT_BROKER":          "tcp://127.0.0.1:1",
		"MQTT_ERR":             "first line\nsecond line", // the binary form
		"MQTT_TLS_SERVER_NAME": "fleet.example",
		"MQTT__TRUSTED":        "x",
		"MQTT_MESSAGE":         "mine",
		"PRIORITY":             "4",
		"MESSAGE":              `refused session=3 mqtt.broker=tcp://127.0.0.1:1 mqtt.err="first line\nsecond line" mqtt.tls.server-name=fleet.example mqtt._trusted=x mqtt.message=mine`,
	} {
		if got := f[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	log.Info("top level", "_trusted", "x", "message", "mine", "9lives", 1)
	f, _ = receiveEntry(t, jd)
	for k, want := range map[string]string{"TRUSTED": "x", "ATTR_MESSAGE": "mine", "LIVES": "1", "MESSAGE": "top level _trusted=x message=mine 9lives=1"} {
		if got := f[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if stderr.Len() > 0 {
		t.Errorf("records sent to the journal also went to stderr: %q", stderr.String())
	}
}

// An entry larger than a datagram can be goes in a sealed memfd, whole.
func TestJournalNativeLarge(t *testing.T) {
	jd, path := fakeJournald(t)
	var stderr bytes.Buffer
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB, beyond a datagram
	slog.New(newJournalHandler(&stderr, slog.LevelInfo, path)).Error("huge", "payload", big)
	f, memfd := receiveEntry(t, jd)
	if !memfd {
		t.Errorf("a 1 MiB entry was sent as a datagram, not in a memfd")
	}
	if got := f["PAYLOAD"]; len(got) != 1 || got[0] != big {
		t.Errorf("PAYLOAD not received whole (%d values)", len(got))
	}
	if got := f["PRIORITY"]; len(got) != 1 || got[0] != "3" {
		t.Errorf("PRIORITY %q", got)
	}
	if stderr.Len() > 0 {
		t.Errorf("also on stderr: %d bytes", stderr.Len())
	}
}

// Without journald's socket, or when it goes away, each record is a
// "<N>" line on stderr: none is lost.
func TestJournalFallback(t *testing.T) {
	var stderr bytes.Buffer
	log := slog.New(newJournalHandler(&stderr, slog.LevelDebug, filepath.Join(t.TempDir(), "absent")))
	log.Warn("link down", "port", "/dev/ttyUSB2")
	log.Debug("probe")

	jd, path := fakeJournald(t)
	gone := slog.New(newJournalHandler(&stderr, slog.LevelDebug, path))
	gone.Info("sent")
	if f, _ := receiveEntry(t, jd); len(f["MESSAGE"]) != 1 || f["MESSAGE"][0] != "sent" {
		t.Fatalf("MESSAGE %q", f["MESSAGE"])
	}
	jd.Close()
	gone.Error("after journald went away", "err", "x")

	want := []string{
		"<4>level=WARN msg=\"link down\" port=/dev/ttyUSB2",
		"<7>level=DEBUG msg=probe",
		"<3>level=ERROR msg=\"after journald went away\" err=x",
	}
	if got := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), strings.Join(want, "\n"))
	}
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if prio, _ := journaldLine(line); prio != 4 && prio != 7 && prio != 3 {
			t.Errorf("priority %d: %q", prio, line)
		}
	}
}
