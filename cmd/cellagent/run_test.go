package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"cellagent/modem/bg96emu/bg96emutest"
	"cellagent/transport/mqtt/mqtttest"
)

var (
	buildOnce         sync.Once
	binPath, benchBin string
	buildErr          error
	binDir            string
)

// testBinary builds the command (and cmd/cellbench) once per test run.
func testBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "cellagent-bin-")
		if buildErr != nil {
			return
		}
		binPath, benchBin = filepath.Join(binDir, "cellagent"), filepath.Join(binDir, "cellbench")
		out, err := exec.Command("go", "build", "-o", binDir, ".", "../cellbench").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// benchBinary is cmd/cellbench, built with the command, for the tests that
// run the simulators as a user of the README does.
func benchBinary(t *testing.T) string {
	t.Helper()
	testBinary(t)
	return benchBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// The service as systemd runs it: readiness and watchdog pings on
// NOTIFY_SOCKET, and SIGTERM answered by a drain that exits 0 in time and
// leaves the broker with a clean offline status.
func TestRunAsService(t *testing.T) {
	bin := testBinary(t)
	m := startSim(t)
	dir := t.TempDir()
	tty := bg96emutest.Link(t, m, dir)
	b := mqtttest.Start(t, mqtttest.Options{})

	var mu sync.Mutex
	var statuses []string
	sub := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID("test-fleet"))
	if tok := sub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer sub.Disconnect(100)
	topic := "cellagent/v1/" + m.ICCID() + "/status"
	if tok := sub.Subscribe(topic, 1, func(_ paho.Client, msg paho.Message) {
		mu.Lock()
		statuses = append(statuses, string(msg.Payload()))
		mu.Unlock()
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	sawStatus := func(state string) bool {
		mu.Lock()
		defer mu.Unlock()
		return len(statuses) > 0 && strings.Contains(statuses[len(statuses)-1], `"state":"`+state+`"`)
	}

	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cfg := filepath.Join(dir, "cellagent.toml")
	body := fmt.Sprintf("[modem]\nport = %q\n[mqtt]\nbroker = %q\nallow_plaintext = true\n[state]\ndir = %q\n", tty, b.URL(), filepath.Join(dir, "state"))
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", cfg, "--runtime-dir", dir)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=600000")
	var stderr mqtttest.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("agent stderr:\n%s", stderr.String())
		}
	}()

	// READY=1 must come before the first watchdog ping.
	var order []string
	buf := make([]byte, 4096)
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for len(order) < 2 {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("notify socket: %v (got %q)", err, order)
		}
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			if line == "READY=1" || (line == "WATCHDOG=1" && len(order) > 0) {
				order = append(order, line)
			} else if line == "WATCHDOG=1" {
				t.Fatalf("WATCHDOG=1 before READY=1")
			}
		}
	}
	if order[0] != "READY=1" || order[1] != "WATCHDOG=1" {
		t.Fatalf("notifications %q", order)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !sawStatus("online") {
		if time.Now().After(deadline) {
			t.Fatalf("no online status; got %q", statuses)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The port is the agent's now: status shows the agent's own view.
	deadline = time.Now().Add(10 * time.Second)
	for {
		o := cli(t, "", "status", "--port", tty, "--runtime-dir", dir)
		flat := strings.Join(strings.Fields(o.stdout), " ")
		if o.code == 0 && strings.Contains(flat, "held by another program") && strings.Contains(flat, "Device id "+m.ICCID()) &&
			strings.Contains(flat, "MQTT connected") && strings.Contains(flat, "Link health healthy") &&
			strings.Contains(flat, "Modem life up since ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status while the agent runs: code %d\n%s%s", o.code, o.stdout, o.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// SIGHUP reloads the file: a new log level takes effect, a bad file
	// is refused and the running configuration stays.
	if err := os.WriteFile(cfg, []byte("[modem]\nspeed = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, &stderr, "reload refused")
	if err := os.WriteFile(cfg, []byte(body+"[log]\nlevel = \"debug\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, &stderr, "configuration reloaded")

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit within 15 s of SIGTERM")
	}
	t.Logf("exited %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	deadline = time.Now().Add(5 * time.Second)
	for !sawStatus("offline") {
		if time.Now().After(deadline) {
			t.Fatalf("broker never saw offline; got %q", statuses)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(stderr.String(), "agent: stopped") {
		t.Errorf("no orderly stop in the log:\n%s", stderr.String())
	}
}

// A configuration the service cannot run with stops it at once, naming
// the key: systemd then shows the reason in `systemctl status`.
func TestRunRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(cfg, []byte("[mqtt]\nbroker = \"tcp://broker.example.com:1883\"\n[modem]\nport = \"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := cli(t, "", "run", "--config", cfg)
	if o.code != 1 || !strings.Contains(o.stderr, "mqtt.broker") || !strings.Contains(o.stderr, "modem.port") {
		t.Errorf("code %d stderr %q", o.code, o.stderr)
	}
	o = cli(t, "", "run", "--config", filepath.Join(dir, "missing.toml"))
	if o.code != 1 || !strings.Contains(o.stderr, "missing.toml") {
		t.Errorf("missing file: code %d stderr %q", o.code, o.stderr)
	}
}

func waitLog(t *testing.T, b *mqtttest.Buffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
