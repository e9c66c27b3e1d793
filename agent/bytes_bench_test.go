package agent

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"cellagent/agent/config"
	"cellagent/modem/bg96emu"
	"cellagent/modem/bg96emu/bg96emutest"
	"cellagent/transport/mqtt"
	"cellagent/transport/mqtt/mqtttest"
)

// countingConn counts the TCP payload both ways: what a cellular modem
// would carry, TLS records included (IP and TCP headers are not).
type countingConn struct {
	net.Conn
	sent, recv, segs *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.recv.Add(int64(n))
		c.segs.Add(1)
	}
	return n, err
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.sent.Add(int64(n))
		c.segs.Add(1)
	}
	return n, err
}

// headerBytes estimates what IP and TCP add on the air: each small write
// or read is about one segment, and each segment is acknowledged by one
// (possibly piggybacked) ACK; 52 B is IPv4 plus TCP with timestamps.
const headerBytes = 2 * 52

// BenchmarkCellularBytesPerDay measures what the agent costs on the
// cellular link at default settings: one TLS connection with a password,
// the default keepalive, telemetry by exception with the default
// dead-bands and 30 min heartbeat, a steady signal with one change per
// hour. It counts TCP payload; BenchmarkWireBytesPerDay counts IP packets.
//
// paho's keepalive counts whole seconds, so time runs 300 times fast
// (keepalive 4 s, heartbeat 6 s, one change every 12 s): every message is
// the one a real day would send, only closer together. Six simulated hours
// are measured and scaled to a day, the connection set-up counted once.
//
//	go test -run '^$' -bench CellularBytesPerDay -benchtime 1x ./agent/
func BenchmarkCellularBytesPerDay(b *testing.B) {
	const (
		speedup   = 300
		simulated = 6 * time.Hour
	)
	scaled := func(d time.Duration) time.Duration { return d / speedup }

	m := bg96emutest.Start(b, bg96emu.Config{BootDelay: 200 * time.Millisecond, RegisterDelay: 50 * time.Millisecond})
	dir := b.TempDir()
	tty := bg96emutest.Link(b, m, dir)
	broker := mqtttest.Start(b, mqtttest.Options{TLS: true, Users: map[string]string{"gw": "gw-secret"}})
	pw := filepath.Join(dir, "mqtt.password")
	if err := os.WriteFile(pw, []byte("gw-secret\n"), 0o600); err != nil {
		b.Fatal(err)
	}

	cfg := config.Default()
	cfg.Modem.Port = tty
	cfg.State.Dir = filepath.Join(dir, "state")
	cfg.MQTT.Broker, cfg.MQTT.CAFile = broker.URL(), broker.PKI().CAFile
	cfg.MQTT.Username, cfg.MQTT.PasswordFile = "gw", pw
	cfg.MQTT.KeepAlive.Duration = scaled(cfg.MQTT.KeepAlive.Duration)
	cfg.Telemetry.Heartbeat.Duration = scaled(cfg.Telemetry.Heartbeat.Duration)
	cfg.Telemetry.Poll.Duration = time.Second

	var sent, recv, segs atomic.Int64
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := mqtt.Dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{c, &sent, &recv, &segs}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Options{Config: cfg, Version: "bench", Dial: dial}) }()

	// Set-up: TLS, CONNECT, subscriptions, birth and the first sample.
	deadline := time.Now().Add(30 * time.Second)
	for recv.Load() == 0 {
		if time.Now().After(deadline) {
			b.Fatal("the agent never reached the broker")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	setupSent, setupRecv, setupSegs := sent.Load(), recv.Load(), segs.Load()

	b.ResetTimer()
	start := time.Now()
	rsrp := []int{-95, -101}
	for i := 0; time.Since(start) < scaled(simulated); i++ {
		time.Sleep(scaled(time.Hour))
		r := rsrp[i%2]
		if err := m.SetSignal(bg96emu.Signal{Act: "CAT-M1", RSSI: -65, RSRP: r, SINR: 12, RSRQ: -11}); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	steadySent, steadyRecv, steadySegs := sent.Load()-setupSent, recv.Load()-setupRecv, segs.Load()-setupSegs
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}

	day := float64(24*time.Hour) / (float64(elapsed) * speedup)
	setup := float64(setupSent + setupRecv)
	// In the steady state nothing comes in but PINGRESPs (telemetry is
	// QoS 0, unacknowledged), each as large as the PINGREQ it answers:
	// twice what came in is the keepalive, the rest of what went out is
	// telemetry. Events: none in a steady day.
	keepalive := day * float64(2*steadyRecv)
	telemetry := day * float64(steadySent-steadyRecv)
	perDay := setup + keepalive + telemetry
	wire := perDay + float64(setupSegs)*headerBytes + day*float64(steadySegs)*headerBytes
	b.ReportMetric(perDay/1024, "KiB/day")
	b.ReportMetric(wire/1024, "wire-KiB/day")
	b.ReportMetric(setup, "setup-B")
	b.ReportMetric(keepalive/1024, "keepalive-KiB/day")
	b.ReportMetric(telemetry/1024, "telemetry-KiB/day")
	fmt.Fprintf(os.Stderr, "over %.1f simulated h: set-up %.0f B once; per day keepalive %.1f KiB, telemetry %.1f KiB; total %.1f KiB/day of TCP payload, about %.1f KiB/day with IP/TCP headers (goal 150)\n",
		float64(elapsed)*speedup/float64(time.Hour), setup, keepalive/1024, telemetry/1024, perDay/1024, wire/1024)
}
