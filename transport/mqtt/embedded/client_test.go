package embedded

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"cellagent/transport/mqtt"
)

// memQueue is the smallest mqtt.Queue: the durable store is not what
// this test is about.
type memQueue struct {
	mu    sync.Mutex
	items []mqtt.QueueItem
	next  uint64
}

func (q *memQueue) Push(rec []byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.next++
	q.items = append(q.items, mqtt.QueueItem{Seq: q.next, Rec: append([]byte(nil), rec...)})
	return nil
}

func (q *memQueue) Peek(n int) ([]mqtt.QueueItem, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]mqtt.QueueItem(nil), q.items[:min(n, len(q.items))]...), nil
}

func (q *memQueue) Ack(through uint64) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for len(q.items) > 0 && q.items[0].Seq <= through {
		q.items = q.items[1:]
		n++
	}
	return n, nil
}

// dialer lets the test cut the device's TCP connection and keep it down.
// The client gets a pipe relayed to the broker, so a cut reaches both
// ends as EOF, like a dropped link; closing the client's own socket under
// it would look to the client like its own doing.
type dialer struct {
	mu      sync.Mutex
	cuts    []func()
	blocked bool
}

func (d *dialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.blocked {
		return nil, errors.New("link down")
	}
	up, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	local, far := net.Pipe()
	cut := func() { up.Close(); far.Close() }
	go func() { _, _ = io.Copy(far, up); cut() }()
	go func() { _, _ = io.Copy(up, far); cut() }()
	d.cuts = append(d.cuts, cut)
	return local, nil
}

func (d *dialer) cut(block bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.blocked = block
	for _, cut := range d.cuts {
		cut()
	}
	d.cuts = nil
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// cellagent's own client and fleet reader against the embedded broker:
// the bench default of `make run` and `cellagent fleet list`.
func TestCellagentClientAndFleetList(t *testing.T) {
	b := start(t)
	log, _ := testLogger(t, slog.LevelDebug)
	conn := mqtt.Conn{Broker: b.URL(), AllowPlaintext: true, KeepAlive: 30 * time.Second, ConnectTimeout: 5 * time.Second}
	list := func() []mqtt.Gateway {
		t.Helper()
		gws, err := mqtt.List(context.Background(), mqtt.FleetOptions{Conn: conn, Logger: log}, 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		return gws
	}

	d := &dialer{}
	dc := conn
	dc.Dial = d.dial
	id := mqtt.Identity{ICCID: "8988228066601234567", Model: "BG96", Agent: "test"}
	c, err := mqtt.New(mqtt.Options{
		Conn: dc, DeviceID: "dev1", Identity: id,
		Ordered: &memQueue{}, Telemetry: &memQueue{},
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run did not return")
			}
		})
	}
	defer stop()
	waitFor(t, "session 1", func() bool { s := c.Stats(); return s.Connected && s.Session == 1 })

	if err := c.QueueTelemetry(mqtt.Telemetry{Reg: mqtt.Registration{EPS: "home"}, Act: "CAT-M1", Operator: "26201"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "telemetry sent", func() bool { return c.Stats().Published > 0 })
	// List settles after 200 ms without a message; on a loaded machine
	// the retained ones may come later, so every check polls.
	expect := func(what string, ok func(g mqtt.Gateway) bool) {
		t.Helper()
		var gws []mqtt.Gateway
		waitFor(t, what, func() bool { gws = list(); return len(gws) == 1 && ok(gws[0]) })
		t.Logf("%s: %+v", what, gws[0])
	}
	expect("online in the fleet list", func(g mqtt.Gateway) bool {
		return g.ID == "dev1" && g.Online && g.Session == 1 && g.Identity == id && g.Reg == "home" && g.Act == "CAT-M1"
	})

	// A lost link: the broker publishes the retained will of session 1.
	d.cut(true)
	expect("will in the fleet list", func(g mqtt.Gateway) bool { return !g.Online && g.Session == 1 })
	d.cut(false)
	// Every connect attempt takes a session number, failed ones too.
	waitFor(t, "a new session", func() bool { s := c.Stats(); return s.Connected && s.Session > 1 })
	session := c.Stats().Session
	expect("back online", func(g mqtt.Gateway) bool { return g.Online && g.Session == session })

	stop()
	expect("clean offline", func(g mqtt.Gateway) bool { return !g.Online && g.Session == session })
}
