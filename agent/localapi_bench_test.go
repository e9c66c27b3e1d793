package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"cellagent/agent/config"
	"cellagent/modem/bg96emu"
	"cellagent/modem/bg96emu/bg96emutest"
	"cellagent/transport/localapi"
	"cellagent/transport/mqtt/mqtttest"
)

// BenchmarkLocalAPI measures the local API as a client on the gateway
// sees it: a request on the socket to a running agent (simulated modem,
// real mosquitto) and its answer. /v1/status builds the view at the
// request; /v1/sms answers once the message is committed (fsync'd) to
// the store, so its figure is mostly the disk's.
//
//	go test -run XXX -bench LocalAPI -benchtime 300x ./agent/
func BenchmarkLocalAPI(b *testing.B) {
	m := bg96emutest.Start(b, bg96emu.Config{BootDelay: 200 * time.Millisecond, RegisterDelay: 50 * time.Millisecond})
	dir := b.TempDir()
	tty := bg96emutest.Link(b, m, dir)
	broker := mqtttest.Start(b, mqtttest.Options{})
	cfg := config.Default()
	cfg.Modem.Port = tty
	cfg.State.Dir = filepath.Join(dir, "state")
	cfg.MQTT.Broker, cfg.MQTT.AllowPlaintext = broker.URL(), true
	cfg.SMS.PerMinute, cfg.SMS.PerHour, cfg.SMS.PerDay, cfg.SMS.PerDestinationDay = 1e6, 1e6, 1e6, 0
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Options{Config: cfg, Version: "bench", RuntimeDir: dir}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	c := localapi.NewClient(filepath.Join(dir, localapi.SocketName))
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := c.Status(context.Background()); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("the API never answered")
		}
		time.Sleep(20 * time.Millisecond)
	}

	b.Run("GET-status", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.Status(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	})
	run := 0
	b.Run("POST-sms", func(b *testing.B) {
		run++
		i := 0
		for b.Loop() {
			i++
			if _, err := c.SendSMS(context.Background(), localapi.SMSRequest{To: "5432145", Text: "bench",
				IdempotencyKey: fmt.Sprintf("bench-%d-%d", run, i)}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
