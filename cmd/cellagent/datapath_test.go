package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"cellagent/agent"
	"cellagent/modem/bg96emu/bg96emutest"
	"cellagent/transport/mqtt/mqtttest"
)

// The agent as a process, with a wrong APN: the network refuses the PDP
// activation (NO CARRIER, +CEER "Missing or unknown APN"). The agent
// raises one alert, the ladder takes no step however long it watches,
// and the simulator sees one dial, not a dial loop. Fixing the APN in
// the file and sending SIGHUP writes the new APN to the modem (the only
// NVRAM write) and dials again: the network answers CONNECT. pppd then
// exits at once on this kernel without PPP, which the agent reports as
// such, again without a loop.
func TestWrongAPNProcess(t *testing.T) {
	bin := testBinary(t)
	m := startSim(t)
	m.SetAcceptedAPN("internet.m2m")
	// The network's clock runs ten minutes behind this machine's.
	m.SetNetworkTimeOffset(-10 * time.Minute)
	if err := m.StartDataPort(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tty, data := filepath.Join(dir, "ttyBG96"), filepath.Join(dir, "ttyBG96-data")
	if err := m.Link(tty); err != nil {
		t.Fatal(err)
	}
	if err := m.LinkDataPort(data); err != nil {
		t.Fatal(err)
	}
	b := mqtttest.Start(t, mqtttest.Options{})
	pppd, err := exec.LookPath("pppd")
	if err != nil {
		pppd = "/usr/sbin/pppd"
	}
	// A ladder as eager as the configuration allows: polls every second,
	// acts after two, one-second waits. It must still do nothing.
	body := func(apn string) string {
		return fmt.Sprintf(`[modem]
port = %q
[network]
apn = %q
[data]
mode = "ppp"
port = %q
interface = "ppp9"
pppd = %q
backoff_min = "1s"
backoff_max = "4s"
[mqtt]
broker = %q
allow_plaintext = true
[state]
dir = %q
[supervisor]
poll = "1s"
at_timeout = "500ms"
unresponsive_after = "3s"
observe = "2s"
backoff_min = "1s"
backoff_max = "10s"
park = "10s"
[supervisor.steps.redial]
wait = "1s"
[supervisor.steps.reattach]
wait = "1s"
[supervisor.steps.cfun-reset]
wait = "1s"
[supervisor.steps.reboot]
wait = "1s"
min_interval = "0s"
`, tty, apn, data, pppd, b.URL(), filepath.Join(dir, "state"))
	}
	cfg := filepath.Join(dir, "cellagent.toml")
	if err := os.WriteFile(cfg, []byte(body("wrong.apn")), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startAgentProc(t, bin, "run", "--config", cfg, "--runtime-dir", dir)
	status := func() agent.Status {
		var st agent.Status
		b, err := os.ReadFile(filepath.Join(dir, agent.StatusFile))
		if err == nil {
			_ = json.Unmarshal(b, &st)
		}
		return st
	}
	p.waitStderr(t, "configuration fault: dial: NO CARRIER (Missing or unknown APN)")
	// Watch as long again as the ladder would need to climb to the top;
	// the status file is rewritten every 15 s.
	var st agent.Status
	deadline := time.Now().Add(30 * time.Second)
	for st = status(); st.Bearer == nil || st.Bearer.State != "blocked" || time.Until(deadline) > 18*time.Second; st = status() {
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	log := p.stderr.String()
	dials, _, _ := m.DataStats()
	alerts := strings.Count(log, "supervisor: configuration fault")
	blocked := strings.Count(log, "event: data bearer blocked")
	steps := strings.Count(log, "supervisor: taking a recovery step")
	t.Logf("wrong APN: %d dials, %d supervisor alerts, %d bearer alerts, %d recovery steps; supervisor %s; NVRAM writes %v",
		dials, alerts, blocked, steps, st.Supervisor.State, m.NVWrites())
	if dials > 2 || alerts != 1 || blocked != 1 || steps != 0 || st.Supervisor.ActionsToday != 0 {
		t.Errorf("wrong APN: %d dials, %d alerts, %d bearer alerts, %d steps", dials, alerts, blocked, steps)
	}
	if st.Bearer == nil || st.Bearer.Cause != "Missing or unknown APN" || st.Bearer.State != "blocked" ||
		st.Network == nil || !strings.Contains(st.Network.Fault, "Missing or unknown APN") {
		t.Errorf("status: bearer %+v network %+v", st.Bearer, st.Network)
	}
	if w := m.NVWrites(); w["pdp_context"] != 1 || len(w) != 1 {
		t.Errorf("NVRAM writes %v, want the APN once", w)
	}
	// Network time: read at the session's start, and one event for the
	// clocks' disagreement.
	if nt := st.NetworkTime; nt == nil || nt.SkewSeconds < 595 || nt.SkewSeconds > 605 || nt.Source == "" || nt.UsingNetwork {
		t.Errorf("network time %+v", nt)
	}
	if n := strings.Count(log, "event: system clock is 10m"); n != 1 {
		t.Errorf("%d clock events", n)
	}

	// The operator fixes the APN and reloads.
	if err := os.WriteFile(cfg, []byte(body("internet.m2m")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		d, online, _ := m.DataStats()
		if online && d > dials {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no CONNECT after the reload (dials %d)", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if w := m.NVWrites(); w["pdp_context"] != 2 || len(w) != 1 {
		t.Errorf("NVRAM writes after the reload %v, want the APN twice in all", w)
	}
	if _, err := os.Stat("/dev/ppp"); err == nil {
		return
	}
	// The radio re-registers after the APN write: a dial or two may
	// meet no service first, and back off.
	p.waitStderr(t, "pppd exit 4: the kernel lacks PPP support")
	d2, _, _ := m.DataStats()
	time.Sleep(5 * time.Second)
	d3, _, _ := m.DataStats()
	t.Logf("after the reload: %d dials until CONNECT and pppd's exit, %d in the 5 s after", d2-dials, d3-d2)
	if d3 != d2 || strings.Count(p.stderr.String(), "event: data bearer blocked: pppd exit 4") != 1 {
		t.Errorf("after pppd's exit: %d more dials", d3-d2)
	}
}

// A wrong SIM PIN: entered once, refused, never again (each try brings
// the SIM closer to PUK lock), one alert, no recovery step; the right
// PIN and a reload bring the session up.
func TestWrongPINProcess(t *testing.T) {
	bin := testBinary(t)
	m := startSim(t)
	m.SetPIN("1234", 3)
	m.Reboot()
	dir := t.TempDir()
	tty := bg96emutest.Link(t, m, dir)
	b := mqtttest.Start(t, mqtttest.Options{})
	pin := filepath.Join(dir, "sim-pin")
	if err := os.WriteFile(pin, []byte("0000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "cellagent.toml")
	body := fmt.Sprintf(`[device]
id = "gw-pin"
[modem]
port = %q
[network]
pin_file = %q
[mqtt]
broker = %q
allow_plaintext = true
[state]
dir = %q
[supervisor]
poll = "1s"
at_timeout = "500ms"
unresponsive_after = "3s"
modem_timeout = "2s"
observe = "2s"
backoff_min = "1s"
backoff_max = "10s"
park = "10s"
`, tty, pin, b.URL(), filepath.Join(dir, "state"))
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startAgentProc(t, bin, "run", "--config", cfg, "--runtime-dir", dir)
	p.waitStderr(t, "configuration fault: SIM PIN: bg96: the SIM rejected the PIN")
	time.Sleep(10 * time.Second)
	log := p.stderr.String()
	left := m.PINAttemptsLeft()
	steps := strings.Count(log, "supervisor: taking a recovery step")
	alerts := strings.Count(log, "supervisor: configuration fault")
	t.Logf("wrong PIN: %d attempts left of 3, %d alerts, %d recovery steps in 10 s", left, alerts, steps)
	if left != 2 || steps != 0 || alerts != 1 {
		t.Errorf("wrong PIN: %d attempts left, %d steps, %d alerts", left, steps, alerts)
	}
	if err := os.WriteFile(pin, []byte("1234\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitStderr(t, "event: SIM PIN entered")
	p.waitStderr(t, "session: modem session up")
	if left := m.PINAttemptsLeft(); left != 3 {
		t.Errorf("%d attempts left after the right PIN", left)
	}
}
