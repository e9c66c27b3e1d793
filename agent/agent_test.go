package agent

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"cellagent/agent/config"
	"cellagent/modem/bg96emu"
	"cellagent/modem/bg96emu/bg96emutest"
	"cellagent/transport/mqtt/mqtttest"
)

// watcher subscribes to everything under the prefix and keeps it.
type watcher struct {
	mu   sync.Mutex
	msgs []msg
}

type msg struct {
	topic    string
	payload  string
	retained bool
}

func watch(t *testing.T, url string, id ...string) *watcher {
	t.Helper()
	w := &watcher{}
	o := paho.NewClientOptions().AddBroker(url).SetClientID("test-watcher" + strings.Join(id, "")).SetAutoReconnect(true)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher connect: %v", tok.Error())
	}
	tok := c.Subscribe("cellagent/v1/#", 1, func(_ paho.Client, m paho.Message) {
		w.mu.Lock()
		w.msgs = append(w.msgs, msg{m.Topic(), string(m.Payload()), m.Retained()})
		w.mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return w
}

// wait returns the first message whose topic ends in suffix and whose
// payload contains every one of want.
func (w *watcher) wait(t *testing.T, suffix string, want ...string) msg {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		for _, m := range w.msgs {
			if !strings.HasSuffix(m.topic, suffix) {
				continue
			}
			ok := true
			for _, s := range want {
				ok = ok && strings.Contains(m.payload, s)
			}
			if ok {
				w.mu.Unlock()
				return m
			}
		}
		w.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var seen []string
	for _, m := range w.msgs {
		seen = append(seen, m.topic+" "+m.payload)
	}
	t.Fatalf("no %s message with %q; seen:\n%s", suffix, want, strings.Join(seen, "\n"))
	return msg{}
}

type notes struct {
	mu sync.Mutex
	l  []string
}

func (n *notes) add(s string) {
	n.mu.Lock()
	n.l = append(n.l, s)
	n.mu.Unlock()
}

func (n *notes) has(prefix string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, s := range n.l {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The daemon end to end, against the simulator on a pty and a real
// mosquitto: birth, telemetry, an MT SMS published from the store, an MO
// SMS from a command with its result, a USB hang-up survived, watchdog
// pings, and a drain that ends with a clean offline.
func TestDaemonEndToEnd(t *testing.T) {
	m := bg96emutest.Start(t, bg96emu.Config{BootDelay: 200 * time.Millisecond, RegisterDelay: 50 * time.Millisecond, ReportDelay: 50 * time.Millisecond})
	dir := t.TempDir()
	tty := bg96emutest.Link(t, m, dir)
	b := mqtttest.Start(t, mqtttest.Options{})
	w := watch(t, b.URL())

	cfg := config.Default()
	cfg.Modem.Port = tty
	cfg.State.Dir = filepath.Join(dir, "state")
	cfg.MQTT.Broker, cfg.MQTT.AllowPlaintext, cfg.MQTT.Commands = b.URL(), true, true
	cfg.Telemetry.Poll.Duration = 300 * time.Millisecond
	var n notes
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			Config: cfg, Version: "test", Notify: n.add, Watchdog: 300 * time.Millisecond,
			RuntimeDir: dir, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		})
	}()

	iccid := m.ICCID()
	w.wait(t, iccid+"/status", `"state":"online"`, `"imei":"866425031234567"`, `"agent":"test"`)
	w.wait(t, iccid+"/telemetry", `"eps":"home"`, `"rsrp":`)
	eventually(t, "READY=1", func() bool { return n.has("READY=1") })
	eventually(t, "WATCHDOG=1", func() bool { return n.has("WATCHDOG=1") })

	if err := m.DeliverText("+4915112345678", "hello gateway"); err != nil {
		t.Fatal(err)
	}
	in := w.wait(t, iccid+"/sms/in", `"text":"hello gateway"`, `"from":"+4915112345678"`)
	var body struct{ ID string }
	if err := json.Unmarshal([]byte(in.payload), &body); err != nil || body.ID == "" {
		t.Errorf("sms/in without id: %s", in.payload)
	}
	eventually(t, "an empty SIM", func() bool { return len(m.Stored()) == 0 })

	cmd := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID("test-operator"))
	if tok := cmd.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer cmd.Disconnect(100)
	tok := cmd.Publish("cellagent/v1/"+iccid+"/cmd/sms/send", 1, false,
		`{"id":"op-1","to":"+491701234567","text":"status?","report":true}`)
	tok.Wait()
	w.wait(t, iccid+"/cmd/sms/send/result", `"id":"op-1"`, `"ok":true`)
	w.wait(t, iccid+"/sms/out/result", `"id":"op-1"`, `"state":"sent"`)
	w.wait(t, iccid+"/sms/out/result", `"id":"op-1"`, `"state":"delivered"`)
	if sent := m.SentMessages(); len(sent) != 1 || sent[0].Text != "status?" {
		t.Errorf("sent %+v", sent)
	}

	// A recovery step on request goes through the ladder, budgets and all,
	// and reports itself as an event.
	cmd.Publish("cellagent/v1/"+iccid+"/cmd/recover", 1, false, `{"id":"op-2","step":"reattach"}`).Wait()
	w.wait(t, iccid+"/cmd/recover/result", `"id":"op-2"`, `"ok":true`)
	w.wait(t, iccid+"/event", `"type":"recovery"`, `reattach`)
	cmd.Publish("cellagent/v1/"+iccid+"/cmd/recover", 1, false, `{"id":"op-3","step":"format-disk"}`).Wait()
	w.wait(t, iccid+"/cmd/recover/result", `"id":"op-3"`, `"ok":false`)

	if err := m.HangUp(300 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	w.wait(t, iccid+"/event", `"type":"modem"`, `session down`)
	w.wait(t, iccid+"/event", `"type":"modem"`, `"seq":2`)

	var st Status
	eventually(t, "status file", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, StatusFile))
		return err == nil && json.Unmarshal(b, &st) == nil && st.Link.Seq == 2 && st.MQTT.Connected
	})
	if st.Supervisor == nil || len(st.Supervisor.Budgets) == 0 || st.Health.Recoveries < 1 {
		t.Errorf("status file lacks the ladder: %+v", st.Supervisor)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if !n.has("STOPPING=1") {
		t.Error("no STOPPING=1")
	}
	w.wait(t, iccid+"/status", `"state":"offline"`)
}
