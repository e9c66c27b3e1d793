package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
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
