package embedded

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"net"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testLogger keeps the broker log in memory and prints it only when the
// test fails: broker goroutines may log after the test ends.
func testLogger(t testing.TB, level slog.Level) (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("broker log:\n%s", buf)
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: level})), buf
}

func start(t testing.TB) *Broker {
	t.Helper()
	log, _ := testLogger(t, slog.LevelDebug)
	b, err := Start(context.Background(), "127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

type msg struct {
	topic, payload string
	retained       bool
}

type client struct {
	c    paho.Client
	msgs chan msg

	mu   sync.Mutex
	conn net.Conn // the TCP connection, to cut it without DISCONNECT
}

type clientOpts struct {
	id         string
	persistent bool // clean session off
	will       string
}

func connect(t testing.TB, b *Broker, o clientOpts) *client {
	t.Helper()
	cl := &client{msgs: make(chan msg, 16)}
	opts := paho.NewClientOptions().AddBroker(b.URL()).SetClientID(o.id).
		SetCleanSession(!o.persistent).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
			cl.mu.Lock()
			cl.conn = c
			cl.mu.Unlock()
			return c, err
		}).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			cl.msgs <- msg{m.Topic(), string(m.Payload()), m.Retained()}
		})
	if o.will != "" {
		opts.SetWill(o.will, "offline", 1, true)
	}
	cl.c = paho.NewClient(opts)
	if tok := cl.c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", o.id, tok.Error())
	}
	t.Cleanup(func() { cl.c.Disconnect(0) })
	return cl
}

func (cl *client) subscribe(t testing.TB, filter string, qos byte) {
	t.Helper()
	if tok := cl.c.Subscribe(filter, qos, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
}

func (cl *client) publish(t testing.TB, topic, payload string, qos byte, retained bool) {
	t.Helper()
	if tok := cl.c.Publish(topic, qos, retained, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// cut closes the TCP connection under the client: no DISCONNECT, so the
// broker must publish the will.
func (cl *client) cut() {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.conn.Close()
}

func (cl *client) next(t testing.TB) msg {
	t.Helper()
	select {
	case m := <-cl.msgs:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5 s")
		return msg{}
	}
}

func TestRetainedAndWill(t *testing.T) {
	b := start(t)
	if !strings.HasPrefix(b.URL(), "tcp://127.0.0.1:") || strings.HasSuffix(b.URL(), ":0") {
		t.Fatalf("URL = %q", b.URL())
	}
	dev := connect(t, b, clientOpts{id: "dev", will: "t/dev/status"})
	dev.publish(t, "t/dev/status", "online", 1, true)

	ops := connect(t, b, clientOpts{id: "ops"})
	ops.subscribe(t, "t/#", 1)
	// mochi stores the retained copy and sends PUBACK before it fans the
	// message out, so a subscriber this quick may get it live as well.
	m := ops.next(t)
	if m == (msg{"t/dev/status", "online", false}) {
		t.Log("the birth arrived live too")
		m = ops.next(t)
	}
	if m != (msg{"t/dev/status", "online", true}) {
		t.Fatalf("on subscribe: %+v", m)
	}

	dev.cut()
	// Live delivery clears the retain flag (MQTT 3.1.1 §3.3.1.3).
	m = ops.next(t)
	if m == (msg{"t/dev/status", "online", false}) {
		t.Log("the birth arrived live too")
		m = ops.next(t)
	}
	if m != (msg{"t/dev/status", "offline", false}) {
		t.Fatalf("will: %+v", m)
	}
	// The will replaced the retained birth.
	late := connect(t, b, clientOpts{id: "late"})
	late.subscribe(t, "t/#", 1)
	if m := late.next(t); m != (msg{"t/dev/status", "offline", true}) {
		t.Fatalf("retained will: %+v", m)
	}

	// A clean DISCONNECT discards the will.
	dev2 := connect(t, b, clientOpts{id: "dev2", will: "t/dev2/status"})
	dev2.c.Disconnect(100)
	ops.c.Publish("t/marker", 1, false, "m").WaitTimeout(5 * time.Second)
	if m := ops.next(t); m.topic != "t/marker" {
		t.Fatalf("after a clean disconnect: %+v", m)
	}
}

// A persistent session collects QoS 1 messages while its client is away
// and gets them on reconnect: the path of a command sent to a gateway
// that is offline.
func TestQoS1QueuedForPersistentSession(t *testing.T) {
	b := start(t)
	dev := connect(t, b, clientOpts{id: "gw", persistent: true})
	dev.subscribe(t, "t/gw/cmd/#", 1)
	dev.subscribe(t, "t/gw/ping", 1)
	ops := connect(t, b, clientOpts{id: "ops"})
	ops.publish(t, "t/gw/ping", "1", 1, false)
	if m := dev.next(t); m.topic != "t/gw/ping" {
		t.Fatalf("ping: %+v", m)
	}
	dev.c.Disconnect(100)

	ops.publish(t, "t/gw/cmd/status", "a", 1, false)
	ops.publish(t, "t/gw/cmd/status", "b", 1, false)
	ops.publish(t, "t/gw/cmd/status", "q0", 0, false)
	// Its PUBACK proves the broker has handled q0 too, before the
	// session comes back.
	ops.publish(t, "t/gw/cmd/status", "c", 1, false)
	dev = connect(t, b, clientOpts{id: "gw", persistent: true})
	var got []string
	for len(got) < 3 {
		// The ping may come again: its PUBACK can lose the race with
		// the DISCONNECT, and QoS 1 is at least once.
		if m := dev.next(t); m.topic != "t/gw/ping" {
			got = append(got, m.payload)
		}
	}
	// mochi redelivers a session's queue sorted by creation time in
	// whole seconds, with an unstable sort: order within a second is
	// lost. Every message arrives, once; QoS 0 is not queued.
	t.Logf("queued QoS 1 arrived as %v", got)
	slices.Sort(got)
	if strings.Join(got, ",") != "a,b,c" {
		t.Fatalf("queued QoS 1 = %v", got)
	}
	select {
	case m := <-dev.msgs:
		if m.topic != "t/gw/ping" {
			t.Fatalf("unexpected: %+v", m)
		}
	case <-time.After(300 * time.Millisecond):
	}
}

func TestRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:1883", "example.com:1883", "127.0.0.1"} {
		b, err := Start(context.Background(), addr, nil)
		if err == nil {
			b.Close()
			t.Errorf("Start(%q) accepted", addr)
			continue
		}
		t.Logf("Start(%q): %v", addr, err)
	}
	if _, err := Start(context.Background(), "0.0.0.0:0", nil); err == nil || !strings.Contains(err.Error(), "not loopback") {
		t.Errorf("error does not say why: %v", err)
	}
	for _, addr := range []string{"localhost:0", "127.0.0.2:0", "[::1]:0"} {
		b, err := Start(context.Background(), addr, nil)
		if err != nil {
			if addr == "[::1]:0" {
				t.Logf("no IPv6 loopback here: %v", err)
				continue
			}
			t.Errorf("Start(%q): %v", addr, err)
			continue
		}
		t.Logf("Start(%q): %s", addr, b.URL())
		b.Close()
	}
}

// brokerGoroutines lists the goroutines running broker code, the test's
// own aside.
func brokerGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var left []string
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i > 0 && (strings.Contains(g, "mochi-mqtt/server") || strings.Contains(g, "transport/mqtt/embedded.(*")) {
			left = append(left, g)
		}
	}
	return left
}

func waitNoLeaks(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := brokerGoroutines()
		n := runtime.NumGoroutine()
		if len(left) == 0 && n <= before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines (%d before); broker goroutines left:\n%s", n, before, strings.Join(left, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Not parallel: it counts goroutines.
func TestCloseIdempotentNoLeaks(t *testing.T) {
	// Earlier tests' brokers may still be winding down: mochi's Close
	// does not wait for its event loop.
	waitNoLeaks(t, math.MaxInt)
	before := runtime.NumGoroutine()
	log, _ := testLogger(t, slog.LevelDebug)
	b, err := Start(context.Background(), "127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(b.URL(), "tcp://")
	dev := connect(t, b, clientOpts{id: "dev", persistent: true, will: "t/dev/status"})
	dev.subscribe(t, "t/#", 1)
	dev.publish(t, "t/x", "retained", 1, true)
	// A peer that never sends CONNECT: mochi's own Close would wait for it.
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	done := make(chan error, 1)
	go func() { done <- b.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung")
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("listener still accepting after Close")
	}
	_ = silent.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("silent connection not closed: %v", err)
	}
	silent.Close()
	// paho notices the lost connection and stops its goroutines itself.
	for dev.c.IsConnected() {
		time.Sleep(10 * time.Millisecond)
	}
	waitNoLeaks(t, before)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func TestContextEndCloses(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	b, err := Start(ctx, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	addr := strings.TrimPrefix(b.URL(), "tcp://")
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting after the context ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(ctx, "127.0.0.1:0", nil); err == nil {
		t.Fatal("Start with an ended context succeeded")
	}
}

// mochi's info and warnings come out at debug, so an info-level daemon
// log stays quiet, and a debug one shows them.
func TestLogsAtDebug(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		log, buf := testLogger(t, level)
		b, err := Start(context.Background(), "127.0.0.1:0", log)
		if err != nil {
			t.Fatal(err)
		}
		dev := connect(t, b, clientOpts{id: "dev"})
		dev.cut()
		b.Close() // returns after the broker's goroutines logged
		out := buf.String()
		switch {
		case level == slog.LevelInfo && out != "":
			t.Errorf("info-level log got:\n%s", out)
		case level == slog.LevelDebug && (!strings.Contains(out, "level=DEBUG") || strings.Contains(out, "level=INFO") || strings.Contains(out, "level=WARN") ||
			!strings.Contains(out, "component=mqtt-broker") || !strings.Contains(out, "client connection ended")):
			t.Errorf("debug-level log:\n%s", out)
		}
	}
}
