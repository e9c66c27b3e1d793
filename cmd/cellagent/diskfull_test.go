package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"cellagent/transport/mqtt/mqtttest"
)

// The adversarial run of issue 20, on the binary: state on a small tmpfs,
// the disk filled, eight SMS requested over MQTT 0.4 s apart. Whatever
// was accepted goes out once and its result is published once there is
// room again; a clean stop and a restart send nothing a second time.
func TestRunFullDiskSendsOnce(t *testing.T) {
	bin := testBinary(t)
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk")
	if err := os.Mkdir(disk, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", disk, "tmpfs", 0, "size=262144,mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs (%v): needs root", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(disk, syscall.MNT_DETACH) })
	m, tty := linkedSim(t, dir)
	b := mqtttest.Start(t, mqtttest.Options{})
	tap := tapBroker(t, b.URL(), "", "", "", "cellagent/v1/gw1/#")
	cfg := agentConfig(t, dir, "cellagent.toml", map[string][]string{
		"device": {`id = "gw1"`},
		"modem":  {"port = " + q(tty)},
		"sms":    {"per_minute = 100", "per_hour = 1000", "per_day = 1000"},
		"mqtt":   {"broker = " + q(b.URL()), "allow_plaintext = true", "commands = true", "commands_per_minute = 600"},
		"state":  {"dir = " + q(filepath.Join(disk, "state"))},
	})
	p := startAgentProc(t, bin, "run", "--config", cfg)
	tap.wait(t, "gw1/status", `"state":"online"`)

	// Slow sends, as a real network's: the disk fills while messages are
	// queued and one is with the modem.
	m.DelayCommand("+CMGS", time.Second)
	const n = 8
	send := func(i int) {
		tap.publish(t, "cellagent/v1/gw1/cmd/sms/send", fmt.Sprintf(`{"id":"df-%d","to":"+491701234567","text":"m%d"}`, i, i))
	}
	for i := range n / 2 {
		send(i)
	}
	tap.wait(t, "gw1/cmd/sms/send/result", fmt.Sprintf(`"id":"df-%d"`, n/2-1))
	filler := filepath.Join(disk, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	for i := n / 2; i < n; i++ {
		send(i)
		time.Sleep(400 * time.Millisecond)
	}
	var accepted []string
	for i := range n {
		id := fmt.Sprintf(`"id":"df-%d"`, i)
		if res := tap.wait(t, "gw1/cmd/sms/send/result", id); strings.Contains(res, `"ok":true`) {
			accepted = append(accepted, fmt.Sprintf("df-%d", i))
		}
	}
	if len(accepted) == n {
		t.Fatalf("all %d accepted: the run did not reach the full disk as intended", n)
	}
	time.Sleep(3 * time.Second)
	full := len(m.SentMessages())
	t.Logf("accepted %v; %d sent with the disk full", accepted, full)
	if !strings.Contains(p.stderr.String(), "no space left on device") {
		t.Fatalf("no store write found the disk full: the run did not reach the case it is about")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for _, id := range accepted {
		tap.wait(t, "gw1/sms/out/result", `"id":"`+id+`"`, `"state":"sent"`)
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
	tap.forget()
	p = startAgentProc(t, bin, "run", "--config", cfg)
	tap.wait(t, "gw1/status", `"state":"online"`)
	time.Sleep(2 * time.Second)
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("clean stop after the restart: %v", err)
	}
	count := map[string]int{}
	for _, s := range m.SentMessages() {
		count[s.Text]++
	}
	for text, c := range count {
		if c != 1 {
			t.Errorf("%q sent %d times", text, c)
		}
	}
	if len(count) != len(accepted) {
		t.Errorf("%d distinct SMS sent, %d accepted (%v)", len(count), len(accepted), accepted)
	}
}
