package mqtt

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"cellagent/transport/mqtt/mqtttest"
)

// testLogger keeps the log in memory and prints it only when the test
// fails: paho goroutines may outlive the test, and t.Log would panic.
func testLogger(t testing.TB) *slog.Logger {
	buf := &mqtttest.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("client log:\n%s", buf)
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type rig struct {
	c         *Client
	ordered   *memQueue
	telemetry *memQueue
	dial      *dialer
	cancel    context.CancelFunc
	done      chan error
	stopOnce  sync.Once
}

func newRig(t testing.TB, b *mqtttest.Broker, mod func(*Options)) *rig {
	t.Helper()
	r := &rig{ordered: &memQueue{max: 1000}, telemetry: &memQueue{max: 100, dropOldest: true}, dial: &dialer{}, done: make(chan error, 1)}
	o := Options{
		Conn: Conn{
			Broker: b.URL(), AllowPlaintext: strings.HasPrefix(b.URL(), "tcp:"),
			KeepAlive: 30 * time.Second, ConnectTimeout: 5 * time.Second, Dial: r.dial.dial,
		},
		Prefix:       "test/v1",
		DeviceID:     "dev1",
		Ordered:      Adapt(r.ordered),
		Telemetry:    Adapt(r.telemetry),
		MinBackoff:   50 * time.Millisecond,
		MaxBackoff:   200 * time.Millisecond,
		PollInterval: time.Second,
		Logger:       testLogger(t),
	}
	if mod != nil {
		mod(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	r.c = c
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- c.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop ends Run and waits for its clean shutdown.
func (r *rig) stop(t testing.TB) {
	t.Helper()
	r.stopOnce.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
}

// waitFor polls cond until it holds.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func decode[T any](t testing.TB, payload string) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %T from %s: %v", v, payload, err)
	}
	return v
}

func TestBirthAndRetainedWill(t *testing.T) {
	t.Parallel()
	b := mqtttest.Start(t, mqtttest.Options{})
	topic := "test/v1/dev1/status"
	w := watch(t, b, watchOpts{id: "ops"}, topic)
	id := Identity{ICCID: "8988228066601234567", IMEI: "866425031234567", Model: "BG96", Firmware: "BG96MAR02A07M1G", Agent: "test"}
	r := newRig(t, b, func(o *Options) { o.Identity = id })

	st := decode[Status](t, w.next(t, 5*time.Second, nil).payload)
	if st.State != Online || st.Session != 1 || st.Identity != id || st.KeepAlive != 30 || st.V != SchemaVersion {
		t.Fatalf("birth = %+v", st)
	}
	// The birth reached the watcher; wait for its PUBACK to reach the
	// client too before cutting, so each cut hits an established session.
	established := func(n uint64) {
		waitFor(t, 5*time.Second, fmt.Sprintf("session %d", n), func() bool { return r.c.Stats().Session == n })
	}
	established(1)

	// Cut the TCP connection under the client: no DISCONNECT, so the
	// broker publishes the will of session 1; the client comes back as 2.
	r.dial.cut(false)
	st = decode[Status](t, w.next(t, 5*time.Second, nil).payload)
	if st.State != Offline || st.Session != 1 || st.Clean || st.TS != 0 {
		t.Fatalf("will = %+v", st)
	}
	st = decode[Status](t, w.next(t, 5*time.Second, nil).payload)
	if st.State != Online || st.Session != 2 {
		t.Fatalf("second birth = %+v", st)
	}
	established(2)

	// Cut again and keep it down: a late subscriber finds the will
	// retained.
	r.dial.cut(true)
	st = decode[Status](t, w.next(t, 5*time.Second, nil).payload)
	if st.State != Offline || st.Session != 2 {
		t.Fatalf("second will = %+v", st)
	}
	late := watch(t, b, watchOpts{id: "late", clean: true}, topic)
	m := late.next(t, 5*time.Second, nil)
	if st = decode[Status](t, m.payload); !m.retained || st.State != Offline || st.Session != 2 {
		t.Fatalf("retained = %+v (retained %v)", st, m.retained)
	}
	waitFor(t, 5*time.Second, "failed reconnects", func() bool { return r.c.Stats().ConnectFailures > 0 })

	// Back up, then a clean shutdown publishes its own retained offline.
	r.dial.allow()
	st = decode[Status](t, w.next(t, 5*time.Second, nil).payload)
	if st.State != Online || st.Session < 3 {
		t.Fatalf("third birth = %+v", st)
	}
	established(st.Session)
	r.stop(t)
	st = decode[Status](t, w.next(t, 5*time.Second, nil).payload)
	if st.State != Offline || !st.Clean || st.TS == 0 {
		t.Fatalf("clean offline = %+v", st)
	}
	if s := r.c.Stats(); s.Connected || s.Connects != 3 || s.BytesSent == 0 || s.BytesReceived == 0 {
		t.Fatalf("stats = %+v", s)
	}
}

// The broker goes away while events and SMS pile up in the durable
// queue; after its restart every one reaches a subscriber once, in
// order, flagged as replayed.
func TestStoreAndForwardAcrossBrokerRestart(t *testing.T) {
	t.Parallel()
	b := mqtttest.Start(t, mqtttest.Options{})
	filters := []string{"test/v1/dev1/event", "test/v1/dev1/sms/in", "test/v1/dev1/sms/out/result"}
	// A persistent session: the operator's consumer is itself offline
	// while the broker restarts, and must miss nothing.
	w := watch(t, b, watchOpts{id: "ops"}, filters...)
	r := newRig(t, b, nil)
	waitFor(t, 5*time.Second, "online", func() bool { return r.c.Stats().Connected })

	if err := r.c.QueueEvent(Event{Type: "agent", Msg: "live"}); err != nil {
		t.Fatal(err)
	}
	live := decode[EventMsg](t, w.next(t, 5*time.Second, nil).payload)
	if live.Replayed || live.Seq != 1 || live.Msg != "live" || live.TS == 0 {
		t.Fatalf("live event = %+v", live)
	}

	b.Stop()
	waitFor(t, 5*time.Second, "offline", func() bool { return !r.c.Stats().Connected })
	const n = 30
	for i := range n {
		var err error
		switch i % 3 {
		case 0:
			err = r.c.QueueSMSIn(SMSIn{ID: fmt.Sprintf("sms-%02d", i), From: "+4915112345678", Text: "hi", Parts: 1, PDUs: []string{"00"}, Received: time.Unix(1700000000, 0).UTC()})
		case 1:
			err = r.c.QueueEvent(Event{Type: "recovery", Msg: fmt.Sprintf("ev-%02d", i)})
		default:
			err = r.c.QueueSMSResult(SMSResult{ID: fmt.Sprintf("res-%02d", i), State: "sent", Refs: []int{i}})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond) // a few failed reconnects
	if got := r.ordered.Len(); got != n {
		t.Fatalf("queued %d, want %d", got, n)
	}
	b.Start()

	var seqs = map[string]uint64{}
	for i := range n {
		m := w.next(t, 10*time.Second, nil)
		var h Header
		var id string
		switch i % 3 {
		case 0:
			v := decode[SMSInMsg](t, m.payload)
			h, id = v.Header, v.ID
		case 1:
			v := decode[EventMsg](t, m.payload)
			h, id = v.Header, v.Msg
		default:
			v := decode[SMSResultMsg](t, m.payload)
			h, id = v.Header, v.ID
		}
		wantTopic := []string{filters[1], filters[0], filters[2]}[i%3]
		if m.topic != wantTopic || !strings.HasSuffix(id, fmt.Sprintf("%02d", i)) {
			t.Fatalf("message %d: %s %s", i, m.topic, m.payload)
		}
		if !h.Replayed {
			t.Errorf("message %d not flagged replayed: %s", i, m.payload)
		}
		// seq restarts with the session and counts per topic.
		if seqs[m.topic]++; h.Seq != seqs[m.topic] {
			t.Errorf("message %d on %s: seq %d, want %d", i, m.topic, h.Seq, seqs[m.topic])
		}
	}
	w.quiet(t, 500*time.Millisecond, nil) // and nothing twice
	if got := r.ordered.Len(); got != 0 {
		t.Fatalf("%d items left in the queue", got)
	}
}

// Telemetry goes out retained, with QoS 0 by default; samples queued
// while offline are replayed and the oldest drop when the queue is full.
func TestTelemetryDropOldestAndRetained(t *testing.T) {
	t.Parallel()
	b := mqtttest.Start(t, mqtttest.Options{})
	w := watch(t, b, watchOpts{id: "ops", clean: true}, "test/v1/dev1/telemetry")
	r := newRig(t, b, nil)
	waitFor(t, 5*time.Second, "online", func() bool { return r.c.Stats().Connected })
	r.dial.cut(true)
	waitFor(t, 5*time.Second, "offline", func() bool { return !r.c.Stats().Connected })
	for i := range 105 {
		rsrp := -80 - i
		if err := r.c.QueueTelemetry(Telemetry{RSRP: &rsrp, Reg: Registration{EPS: "home"}}); err != nil {
			t.Fatal(err)
		}
	}
	if r.telemetry.dropped != 5 {
		t.Fatalf("dropped %d, want 5", r.telemetry.dropped)
	}
	r.dial.allow()
	for i := 5; i < 105; i++ {
		m := decode[TelemetryMsg](t, w.next(t, 5*time.Second, nil).payload)
		if *m.RSRP != -80-i || !m.Replayed || m.Seq != uint64(i-4) {
			t.Fatalf("sample %d = %+v", i, m)
		}
	}
	late := watch(t, b, watchOpts{id: "late", clean: true}, "test/v1/dev1/telemetry")
	m := late.next(t, 5*time.Second, nil)
	if tm := decode[TelemetryMsg](t, m.payload); !m.retained || *tm.RSRP != -184 {
		t.Fatalf("retained telemetry = %s (retained %v)", m.payload, m.retained)
	}
}

// A record nothing can publish is skipped, not allowed to block the
// queue; a queue that cannot acknowledge is retried at the poll, not in a
// loop that would resend the same message as fast as the link allows.
func TestQueueFaults(t *testing.T) {
	t.Parallel()
	b := mqtttest.Start(t, mqtttest.Options{})
	w := watch(t, b, watchOpts{id: "ops", clean: true}, "test/v1/dev1/event")
	r := newRig(t, b, func(o *Options) { o.PollInterval = 300 * time.Millisecond })
	waitFor(t, 5*time.Second, "online", func() bool { return r.c.Stats().Connected })

	if err := r.ordered.Push([]byte("not a record")); err != nil {
		t.Fatal(err)
	}
	if err := r.c.QueueEvent(Event{Type: "agent", Msg: "after poison"}); err != nil {
		t.Fatal(err)
	}
	if m := decode[EventMsg](t, w.next(t, 5*time.Second, nil).payload); m.Msg != "after poison" || m.Q != 2 {
		t.Fatalf("event = %+v", m)
	}
	waitFor(t, 5*time.Second, "queue empty", func() bool { return r.ordered.Len() == 0 })
	if p := r.c.Stats().Poisoned; p != 1 {
		t.Fatalf("poisoned = %d", p)
	}

	r.ordered.setFailAck(true)
	if err := r.c.QueueEvent(Event{Type: "agent", Msg: "sticky"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	copies := 0
	for len(w.ch) > 0 {
		<-w.ch
		copies++
	}
	if copies < 1 || copies > 5 {
		t.Fatalf("%d copies in 1 s with a failing ack", copies)
	}
	r.ordered.setFailAck(false)
	waitFor(t, 5*time.Second, "acknowledged", func() bool { return r.ordered.Len() == 0 })
	if !r.c.Stats().Connected {
		t.Fatal("a local queue fault dropped the session")
	}
}

// A link that stops moving data without closing (a radio gone quiet)
// blocks paho's writer, and then paho's Publish itself, for up to its
// write timeout (a keep-alive). Neither the publisher nor the shutdown
// may wait that long: a stop must not hang for minutes on a stalled
// modem, nor a lost session hold up the next one.
func TestStalledLinkDoesNotBlockShutdown(t *testing.T) {
	t.Parallel()
	b := mqtttest.Start(t, mqtttest.Options{})
	r := newRig(t, b, nil) // KeepAlive, hence paho's write timeout, 30 s
	t.Cleanup(r.dial.unstall)
	waitFor(t, 5*time.Second, "online", func() bool { return r.c.Stats().Connected })
	r.dial.stall()
	// Enough to fill the pipe, paho's writer and its hand-off channels.
	for i := range 3 * r.c.o.MaxInflight {
		if err := r.c.QueueEvent(Event{Type: "agent", Msg: fmt.Sprintf("ev-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond) // the publisher is now stuck on the link
	start := time.Now()
	r.stop(t) // fails after 10 s
	// The offline status gets 5 s to be confirmed, then the will covers
	// it.
	if d := time.Since(start); d > 8*time.Second {
		t.Fatalf("Run took %s to stop on a stalled link", d)
	}
	// The relay's read in progress when the link stalled may let the
	// first PUBLISH through; nothing else can have been confirmed.
	if n, all := r.ordered.Len(), 3*r.c.o.MaxInflight; n < all-1 {
		t.Fatalf("%d items left in the queue of %d: acknowledged without PUBACK", n, all)
	}
}
