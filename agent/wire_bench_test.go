//go:build linux

package agent

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"cellagent/agent/config"
	"cellagent/modem/bg96emu"
	"cellagent/modem/bg96emu/bg96emutest"
	"cellagent/transport/mqtt"
	"cellagent/transport/mqtt/mqtttest"
	"cellagent/transport/secret/secrettest"
)

var (
	wireKeepAlive  = flag.Duration("wire.keepalive", 0, "BenchmarkWireBytesPerDay: MQTT keep-alive (0: the default)")
	wireTimestamps = flag.Bool("wire.timestamps", true, "BenchmarkWireBytesPerDay: TCP timestamps in the agent's namespace (Linux's default: on)")
	wireTCPKA      = flag.Duration("wire.tcpkeepalive", 0, "BenchmarkWireBytesPerDay: dial with the kernel's TCP keep-alive at this interval instead of the agent's dialer (15s is Go's default)")
	wireIdle       = flag.Duration("wire.idle", time.Minute, "BenchmarkWireBytesPerDay: real-time idle window at the real settings")
	wireReconnects = flag.Int("wire.reconnects", 4, "BenchmarkWireBytesPerDay: reconnects a day counted in the total")
)

// wireNet is two network namespaces joined by a veth pair: the agent's
// broker connection is made in A (10.99.0.1), mosquitto runs in B
// (10.99.0.2). Nothing else lives in A: IPv6 is off before the link
// exists (no router or neighbour solicitations) and the neighbours are
// static (no ARP), so A's interface counters are the agent's connection
// and nothing else.
type wireNet struct {
	a, b string
}

const (
	wireAgentIP  = "10.99.0.1"
	wireBrokerIP = "10.99.0.2"
	// ethHeader is what a veth counts per frame above the IP packet.
	ethHeader = 14
)

func ipCmd(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func newWireNet(tb testing.TB) *wireNet {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		tb.Skip("needs ip(8) (iproute2)")
	}
	id := strconv.Itoa(os.Getpid())
	n := &wireNet{a: "cawire-a-" + id, b: "cawire-b-" + id}
	for _, ns := range []string{n.a, n.b} {
		ipCmd(tb, "netns", "add", ns)
		tb.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		ipCmd(tb, "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
		ipCmd(tb, "-n", ns, "link", "set", "lo", "up")
	}
	if !*wireTimestamps {
		ipCmd(tb, "netns", "exec", n.a, "sysctl", "-qw", "net.ipv4.tcp_timestamps=0")
	}
	ipCmd(tb, "link", "add", "va", "netns", n.a, "type", "veth", "peer", "name", "vb", "netns", n.b)
	ipCmd(tb, "-n", n.a, "addr", "add", wireAgentIP+"/30", "dev", "va")
	ipCmd(tb, "-n", n.b, "addr", "add", wireBrokerIP+"/30", "dev", "vb")
	macA := ipCmd(tb, "netns", "exec", n.a, "cat", "/sys/class/net/va/address")
	macB := ipCmd(tb, "netns", "exec", n.b, "cat", "/sys/class/net/vb/address")
	ipCmd(tb, "-n", n.a, "neigh", "replace", wireBrokerIP, "lladdr", macB, "dev", "va", "nud", "permanent")
	ipCmd(tb, "-n", n.b, "neigh", "replace", wireAgentIP, "lladdr", macA, "dev", "vb", "nud", "permanent")
	ipCmd(tb, "-n", n.a, "link", "set", "va", "up")
	ipCmd(tb, "-n", n.b, "link", "set", "vb", "up")
	return n
}

// ipBytes is what crossed A's interface both ways at the IP level, and
// in how many packets.
func (n *wireNet) ipBytes(tb testing.TB) (bytes, packets int64) {
	tb.Helper()
	out := ipCmd(tb, "netns", "exec", n.a, "cat", "/sys/class/net/va/statistics/tx_bytes",
		"/sys/class/net/va/statistics/rx_bytes", "/sys/class/net/va/statistics/tx_packets", "/sys/class/net/va/statistics/rx_packets")
	var v [4]int64
	for i, f := range strings.Fields(out) {
		if i < 4 {
			v[i], _ = strconv.ParseInt(f, 10, 64)
		}
	}
	packets = v[2] + v[3]
	return v[0] + v[1] - ethHeader*packets, packets
}

// broker runs mosquitto in B with TLS (a test CA whose server certificate
// names 127.0.0.1) and a password, and returns the URL the agent is
// configured with: 127.0.0.1 for the certificate; the dialer takes it to
// B's address.
func (n *wireNet) broker(tb testing.TB, dir string) (url, caFile string) {
	tb.Helper()
	pki := secrettest.NewPKI(tb)
	pw := filepath.Join(dir, "passwd")
	if out, err := exec.Command("mosquitto_passwd", "-b", "-c", pw, "gw", "gw-secret").CombinedOutput(); err != nil {
		tb.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	body := fmt.Sprintf("user root\nlog_dest stdout\nlistener 8883 %s\ncafile %s\ncertfile %s\nkeyfile %s\nallow_anonymous false\npassword_file %s\n",
		wireBrokerIP, pki.CAFile, pki.ServerCert, pki.ServerKey, pw)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", n.b, mqtttest.Mosquitto, "-c", conf)
	log, err := os.Create(filepath.Join(dir, "mosquitto.log"))
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); log.Close() })
	return "tls://127.0.0.1:8883", pki.CAFile
}

// wireDialer makes the agent's broker connections in A. A socket belongs
// to the namespace of the thread that created it, so the dial runs on a
// locked thread moved into A and back.
type wireDialer struct {
	ns   string
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	mu    sync.Mutex
	conn  net.Conn
	dials int
}

func (w *wireDialer) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	runtime.LockOSThread()
	home, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer home.Close()
	target, err := os.Open("/run/netns/" + w.ns)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("setns %s: %w", w.ns, err)
	}
	c, derr := w.dial(ctx, network, net.JoinHostPort(wireBrokerIP, port))
	if err := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays locked, so it ends with this goroutine
		// rather than serve others from the wrong namespace.
		return nil, fmt.Errorf("setns back: %w", err)
	}
	runtime.UnlockOSThread()
	if derr != nil {
		return nil, derr
	}
	w.mu.Lock()
	w.conn, w.dials = c, w.dials+1
	w.mu.Unlock()
	return c, nil
}

// cut ends the current connection under the agent, as a broker restart
// or a reset from a NAT that lost the binding does, and waits until it
// has dialled again.
func (w *wireDialer) cut(tb testing.TB) {
	tb.Helper()
	w.mu.Lock()
	c, n := w.conn, w.dials
	w.mu.Unlock()
	// Reads see EOF, as when the broker's side goes away; a plain Close
	// would not do: paho takes "use of closed network connection" for a
	// close of its own and waits for the keep-alive to notice.
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseRead()
	}
	deadline := time.Now().Add(time.Minute)
	for {
		w.mu.Lock()
		d := w.dials
		w.mu.Unlock()
		if d > n {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatal("the agent did not reconnect within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkWireBytesPerDay measures what the agent costs on the cellular
// link at the IP level: its broker connection runs in a network namespace
// of its own and the kernel's interface counters count every packet
// (TCP/IP headers, handshakes, ACKs, retransmissions), against a real
// mosquitto with TLS and a password. Two runs of the agent:
//
//  1. At its real settings, idle for -wire.idle of real time: what the
//     link carries below MQTT (TCP keep-alive probes), scaled to a day;
//     then the connection is cut and the reconnect measured (the TLS
//     session resumed, CONNECT, the birth message).
//  2. The accelerated day of BenchmarkCellularBytesPerDay, 100 times
//     fast (keep-alive, heartbeat and the hourly signal change scaled),
//     six simulated hours scaled to a day; a connection lost meanwhile
//     fails the run.
//
// Per day: set-up once + run 2's steady state + run 1's background +
// -wire.reconnects reconnects. scripts/bench-wire runs it with the
// levers one by one.
//
//	go test -run '^$' -bench WireBytesPerDay -benchtime 1x ./agent/
func BenchmarkWireBytesPerDay(b *testing.B) {
	n := newWireNet(b)
	dir := b.TempDir()
	url, ca := n.broker(b, dir)
	pw := filepath.Join(dir, "mqtt.password")
	if err := os.WriteFile(pw, []byte("gw-secret\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	dial := mqtt.Dial
	if *wireTCPKA > 0 {
		dial = (&net.Dialer{KeepAlive: *wireTCPKA}).DialContext
	}
	cfgFor := func(tty, state string, speedup time.Duration) config.Config {
		cfg := config.Default()
		cfg.Modem.Port, cfg.State.Dir = tty, state
		cfg.MQTT.Broker, cfg.MQTT.CAFile = url, ca
		cfg.MQTT.Username, cfg.MQTT.PasswordFile = "gw", pw
		if *wireKeepAlive > 0 {
			cfg.MQTT.KeepAlive.Duration = *wireKeepAlive
		}
		cfg.MQTT.KeepAlive.Duration /= speedup
		cfg.Telemetry.Heartbeat.Duration /= speedup
		if speedup > 1 {
			cfg.Telemetry.Poll.Duration = time.Second
		}
		return cfg
	}
	type run struct {
		m      *bg96emu.Modem
		d      *wireDialer
		cancel func()
		done   chan error
	}
	start := func(name string, speedup time.Duration) *run {
		m := bg96emutest.Start(b, bg96emu.Config{BootDelay: 200 * time.Millisecond, RegisterDelay: 50 * time.Millisecond})
		tty := filepath.Join(dir, name+"-tty")
		if err := m.Link(tty); err != nil {
			b.Fatal(err)
		}
		w := &wireDialer{ns: n.a, dial: dial}
		ctx, cancel := context.WithCancel(context.Background())
		r := &run{m: m, d: w, cancel: cancel, done: make(chan error, 1)}
		cfg := cfgFor(tty, filepath.Join(dir, name+"-state"), speedup)
		var lg *slog.Logger
		if os.Getenv("WIRE_LOG") != "" {
			lg = slog.New(slog.NewTextHandler(os.Stderr, nil))
		}
		go func() { r.done <- Run(ctx, Options{Config: cfg, Version: "bench", Dial: w.Dial, Logger: lg}) }()
		deadline := time.Now().Add(30 * time.Second)
		for {
			w.mu.Lock()
			d := w.dials
			w.mu.Unlock()
			if d > 0 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("the agent never reached the broker")
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(3 * time.Second) // CONNECT, SUBSCRIBE, birth, first sample
		return r
	}
	stop := func(r *run) {
		r.cancel()
		if err := <-r.done; err != nil {
			b.Fatal(err)
		}
		r.m.Close()
	}

	// 1. Real time, real settings, idle.
	r := start("idle", 1)
	i0, ip0 := n.ipBytes(b)
	time.Sleep(*wireIdle)
	i1, ip1 := n.ipBytes(b)
	// A reconnect, at real settings so that no keep-alive runs into it.
	c0, _ := n.ipBytes(b)
	r.d.cut(b)
	time.Sleep(3 * time.Second)
	c1, _ := n.ipBytes(b)
	stop(r)
	perReconnect := float64(c1 - c0)
	background := float64(i1-i0) * float64(24*time.Hour) / float64(*wireIdle)

	// 2. The accelerated day.
	// 100 times fast rather than BenchmarkCellularBytesPerDay's 300: with
	// a 1 s keep-alive, mosquitto's 1.5 keep-alive limit closed the
	// connection when the machine was busy, and the reconnects counted
	// as steady traffic.
	const (
		speedup   = 100
		simulated = 6 * time.Hour
	)
	time.Sleep(time.Second) // the first run's FIN and its ACKs
	z0, _ := n.ipBytes(b)
	r = start("day", speedup)
	s0, sp0 := n.ipBytes(b)
	setup := s0 - z0
	b.ResetTimer()
	began := time.Now()
	rsrp := []int{-95, -101}
	for i := 0; time.Since(began) < simulated/speedup; i++ {
		time.Sleep(time.Hour / speedup)
		if err := r.m.SetSignal(bg96emu.Signal{Act: "CAT-M1", RSSI: -65, RSRP: rsrp[i%2], SINR: 12, RSRQ: -11}); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(began)
	s1, sp1 := n.ipBytes(b)
	b.StopTimer()
	r.d.mu.Lock()
	dials := r.d.dials
	r.d.mu.Unlock()
	if dials != 1 {
		b.Fatalf("the connection was lost %d times during the accelerated day; its set-ups would count as steady traffic", dials-1)
	}
	day := float64(24*time.Hour) / (float64(elapsed) * speedup)
	steady := float64(s1-s0) * day
	stop(r)
	total := float64(setup) + steady + background + float64(*wireReconnects)*perReconnect

	b.ReportMetric(total/1024, "wire-KiB/day")
	b.ReportMetric(float64(setup), "setup-B")
	b.ReportMetric(steady/1024, "steady-KiB/day")
	b.ReportMetric(background/1024, "idle-KiB/day")
	b.ReportMetric(perReconnect, "reconnect-B")
	fmt.Fprintf(os.Stderr, "IP level, TLS, keep-alive %s, TCP timestamps %v, TCP keep-alive %s: set-up %d B once; steady %.1f KiB/day (%.0f packets/day); "+
		"idle background %.1f KiB/day (%d packets in %s); reconnect %.0f B each, %d a day; total %.1f KiB/day (goal 50)\n",
		cfgFor("", "", 1).MQTT.KeepAlive.Duration, *wireTimestamps, tcpKA(), setup, steady/1024, float64(sp1-sp0)*day,
		background/1024, ip1-ip0, *wireIdle, perReconnect, *wireReconnects, total/1024)
}

func tcpKA() string {
	if *wireTCPKA > 0 {
		return wireTCPKA.String()
	}
	return "off"
}
