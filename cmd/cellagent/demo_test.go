package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"cellagent/agent"
)

// freePort returns a loopback port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// The demo behind `make run` prints commands to try in another terminal:
// after its set-up, each of them must work as printed, with nothing but
// the project's own binary (no mosquitto clients).
func TestDemoCommands(t *testing.T) {
	bin := testBinary(t)
	dir := t.TempDir()
	cmd := exec.Command("../../scripts/demo")
	cmd.Env = append(os.Environ(), "CELLAGENT_BIN="+bin, "CELLBENCH_BIN="+benchBinary(t), "CELLAGENT_DEMO_DIR="+dir,
		fmt.Sprintf("CELLAGENT_DEMO_MQTT_PORT=%d", freePort(t)), fmt.Sprintf("CELLAGENT_DEMO_BSC_PORT=%d", freePort(t)))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The demo's trap stops what it started.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		_ = cmd.Wait()
	})

	// The suggested commands, as printed: "  what:   command", a
	// continued line indented further, a note in parentheses.
	var try []string
	sc := bufio.NewScanner(out)
	inTry := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "Live fleet view follows") {
			break
		}
		if line == "Try in another terminal:" {
			inTry = true
			continue
		}
		if !inTry || strings.HasPrefix(strings.TrimSpace(line), "(") {
			continue
		}
		if _, c, ok := strings.Cut(line, ":  "); ok && strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "    ") {
			try = append(try, strings.TrimSpace(c))
		}
	}
	go func() {
		for sc.Scan() { // the fleet view, not looked at
		}
	}()
	if len(try) < 5 {
		t.Fatalf("found %d suggested commands: %q", len(try), try)
	}
	for _, c := range try {
		if strings.Contains(c, "mosquitto") {
			t.Errorf("suggests a tool the project does not install: %s", c)
		}
	}

	// After the set-up: the agent has its session and its broker.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var st agent.Status
		b, err := os.ReadFile(filepath.Join(dir, agent.StatusFile))
		if err == nil && json.Unmarshal(b, &st) == nil && st.Link.Up && st.MQTT.Connected {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "agent.log"))
			t.Fatalf("the demo's agent is not up after 60 s:\n%s", log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, c := range try {
		start := time.Now()
		res, err := exec.Command("bash", "-c", c).CombinedOutput()
		if err != nil {
			t.Errorf("%s\n  failed after %s: %v\n%s", c, time.Since(start).Round(time.Millisecond), err, res)
			continue
		}
		t.Logf("%s\n%s", c, res)
	}
}
