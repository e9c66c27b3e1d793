package agent

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cellagent/agent/config"
	"cellagent/transport/mqtt/mqtttest"
)

// A gateway whose modem never answers must still come up (READY=1) and
// report, under its host name, so the fleet sees it and recovery can run;
// a service stuck before readiness would be killed by systemd in a loop.
func TestDeadModemStillReady(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	w := watch(t, b.URL())
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Modem.Port = filepath.Join(dir, "ttyBG96")
	cfg.State.Dir = filepath.Join(dir, "state")
	cfg.MQTT.Broker, cfg.MQTT.AllowPlaintext = b.URL(), true
	var mu sync.Mutex
	var notes []string
	notify := func(s string) {
		mu.Lock()
		notes = append(notes, s)
		mu.Unlock()
	}
	open := func(string, int) (io.ReadWriteCloser, error) { return nil, errors.New("no such device") }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Config: cfg, Notify: notify, OpenPort: open, ReadyTimeout: 500 * time.Millisecond})
	}()
	host, err := os.Hostname()
	if err != nil {
		t.Skip("no host name here")
	}
	w.wait(t, host+"/status", `"state":"online"`)
	eventually(t, "READY=1", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range notes {
			if strings.HasPrefix(n, "READY=1") {
				return strings.Contains(n, "modem not up yet (retrying)")
			}
		}
		return false
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
