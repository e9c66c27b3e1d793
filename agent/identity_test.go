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

	"cellagent/agent/config"
	"cellagent/agent/jsonout/jsonouttest"
	"cellagent/modem/bg96emu"
	"cellagent/modem/bg96emu/bg96emutest"
	"cellagent/transport/mqtt"
	"cellagent/transport/mqtt/mqtttest"
)

// startSim runs a simulated modem that takes boot to answer, so the agent
// connects to the broker before the modem's identity is known.
func startSim(t *testing.T, dir string, c bg96emu.Config) (string, *bg96emu.Modem) {
	t.Helper()
	c.BootDelay, c.RegisterDelay, c.ReportDelay = 200*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond
	m := bg96emutest.Start(t, c)
	tty := filepath.Join(dir, "ttyBG96")
	_ = os.Remove(tty)
	if err := m.Link(tty); err != nil {
		t.Fatal(err)
	}
	return tty, m
}

// runAgent runs the daemon until the returned stop is called.
func runAgent(t *testing.T, cfg config.Config, runtimeDir string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Config: cfg, Version: "test", RuntimeDir: runtimeDir,
			Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
}

// births are the retained online statuses of gw-test seen so far.
func (w *watcher) births() []mqtt.Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []mqtt.Status
	for _, m := range w.msgs {
		var st mqtt.Status
		if strings.HasSuffix(m.topic, "/gw-test/status") && json.Unmarshal([]byte(m.payload), &st) == nil && st.State == mqtt.Online {
			out = append(out, st)
		}
	}
	return out
}

// With device.id set, the MQTT session comes up before the modem has
// answered: the identity must still reach the fleet, as a new retained
// birth once it is known; after a restart the first birth carries the
// identity already; a swapped modem shows as a new birth and an event.
func TestBirthCarriesIdentity(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	w := watch(t, b.URL(), "w1")
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Device.ID = "gw-test"
	var modem *bg96emu.Modem
	cfg.Modem.Port, modem = startSim(t, dir, bg96emu.Config{})
	cfg.State.Dir = filepath.Join(dir, "state")
	cfg.MQTT.Broker, cfg.MQTT.AllowPlaintext = b.URL(), true

	// A modem that does not answer yet: the birth goes out without it.
	modem.Silence(true)
	stop := runAgent(t, cfg, "")
	w.wait(t, "gw-test/status", `"state":"online"`)
	if got := w.births(); len(got) != 1 || got[0].IMEI != "" {
		t.Fatalf("births before the modem answered: %+v", got)
	}
	modem.Silence(false)
	w.wait(t, "gw-test/status", `"state":"online"`, `"imei":"866425031234567"`, `"iccid":"`, `"imsi":"`, `"model":"BG96"`, `"fw":"`)
	if got := w.births(); got[len(got)-1].Session != got[0].Session {
		t.Errorf("the identity should come as a new birth of the same session: %+v", got)
	}
	stop()

	// A restart with the modem silent again: the first birth names the
	// modem from what the last session read.
	modem.Silence(true)
	before := len(w.births())
	stop = runAgent(t, cfg, "")
	eventually(t, "a birth after the restart", func() bool { return len(w.births()) > before })
	if got := w.births()[before]; got.IMEI != "866425031234567" || got.ICCID == "" || got.Firmware == "" {
		t.Errorf("first birth after a restart lacks the identity: %+v", got)
	}
	stop()

	// A swapped modem: another IMEI on the same port.
	cfg.Modem.Port, _ = startSim(t, dir, bg96emu.Config{IMEI: "866425039999999"})
	stop = runAgent(t, cfg, "")
	w.wait(t, "gw-test/status", `"state":"online"`, `"imei":"866425039999999"`)
	w.wait(t, "gw-test/event", `"type":"modem"`, `"msg":"modem changed"`, `"from":"866425031234567"`, `"to":"866425039999999"`)
	stop()

	// A swapped SIM: another ICCID in the same modem.
	cfg.Modem.Port, _ = startSim(t, dir, bg96emu.Config{IMEI: "866425039999999", ICCID: "89882280666099999999"})
	stop = runAgent(t, cfg, "")
	w.wait(t, "gw-test/status", `"state":"online"`, `"iccid":"89882280666099999999"`)
	w.wait(t, "gw-test/event", `"type":"sim"`, `"msg":"SIM changed"`, `"to":"89882280666099999999"`)
	defer stop()
	// What a consumer that subscribes now sees: the retained birth with
	// the new identity.
	w3 := watch(t, b.URL(), "w3")
	r := w3.wait(t, "gw-test/status", `"imei":"866425039999999"`, `"iccid":"89882280666099999999"`)
	if !r.retained {
		t.Errorf("birth not retained: %+v", r)
	}
}

// The status file follows every state change at once, not the 15 s tick:
// right after start-up it already says link up and MQTT connected.
func TestStatusFileFresh(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Device.ID = "gw-test"
	cfg.Modem.Port, _ = startSim(t, dir, bg96emu.Config{SMSC: "+491710760000"})
	cfg.State.Dir = filepath.Join(dir, "state")
	cfg.MQTT.Broker, cfg.MQTT.AllowPlaintext = b.URL(), true
	start := time.Now()
	stop := runAgent(t, cfg, dir)
	defer stop()
	var st Status
	var raw []byte
	var linkUp time.Duration
	deadline := start.Add(8 * time.Second) // the boot takes 1 s; the tick is 15 s
	for {
		var err error
		raw, err = os.ReadFile(filepath.Join(dir, StatusFile))
		if err == nil && json.Unmarshal(raw, &st) == nil && st.Link.Up && st.MQTT.Connected {
			linkUp = time.Since(start)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status file still says link up %v, MQTT connected %v after %s:\n%s", st.Link.Up, st.MQTT.Connected, time.Since(start), raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// No [sms] smsc: the SIM's own service centre, and the file says so.
	eventually(t, "the SIM's SMSC in the status file", func() bool {
		raw, _ = os.ReadFile(filepath.Join(dir, StatusFile))
		return json.Unmarshal(raw, &st) == nil && st.SMS == SMSStatus{SMSC: "+491710760000", SMSCFrom: "sim"}
	})
	// The broker goes away: the file says so at once, not at the tick.
	b.Stop()
	stopped := time.Now()
	for {
		raw, _ = os.ReadFile(filepath.Join(dir, StatusFile))
		if json.Unmarshal(raw, &st) == nil && !st.MQTT.Connected {
			break
		}
		if time.Since(stopped) > 8*time.Second {
			t.Fatalf("status file still says MQTT connected %s after the broker stopped", time.Since(stopped))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("status file: link up %s after start, MQTT down %s after the broker stopped", linkUp.Round(time.Millisecond), time.Since(stopped).Round(time.Millisecond))
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if p := jsonouttest.Check(doc, true); p != "" {
		t.Errorf("status file breaks the JSON conventions: %s\n%s", p, raw)
	}
}
