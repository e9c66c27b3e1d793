package agent

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"cellagent/agent/config"
	"cellagent/agent/store"
	"cellagent/modem/bg96emu"
	"cellagent/modem/bg96emu/bg96emutest"
	"cellagent/transport/mqtt/mqtttest"
)

// rm -rf of the state directory while the agent runs: it would go on
// writing into a deleted file and lose the queue, the de-duplication
// index and the budgets at the next start. It notices, drains and ends
// with an error, so that systemd restarts it on a fresh store.
func TestDaemonStopsWhenStateDirDeleted(t *testing.T) {
	m := bg96emutest.Start(t, bg96emu.Config{BootDelay: 200 * time.Millisecond, RegisterDelay: 50 * time.Millisecond})
	dir := t.TempDir()
	tty := bg96emutest.Link(t, m, dir)
	b := mqtttest.Start(t, mqtttest.Options{})
	w := watch(t, b.URL())

	cfg := config.Default()
	cfg.Device.ID = "gw-gone"
	cfg.Modem.Port = tty
	cfg.State.Dir = filepath.Join(dir, "state")
	cfg.MQTT.Broker, cfg.MQTT.AllowPlaintext = b.URL(), true
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			Config: cfg, Version: "test", StoreCheck: 100 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		})
	}()
	w.wait(t, "gw-gone/status", `"state":"online"`)
	if err := os.RemoveAll(cfg.State.Dir); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, store.ErrGone) {
			t.Fatalf("Run ended with %v, want store.ErrGone", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the agent goes on with its state directory deleted")
	}
	// It drained as on SIGTERM: the broker heard a clean offline.
	w.wait(t, "gw-gone/status", `"state":"offline"`)
}
