package mqtt

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"cellagent/transport/mqtt/mqtttest"
	"cellagent/transport/secret/secrettest"
)

// The integration tests run a real mosquitto from mqtttest, as the house
// rules ask; this file holds what they add around it: a plain paho
// watcher, an in-memory queue and a dialer that can cut or stall links.

// msg is a message a watcher received.
type msg struct {
	topic    string
	payload  string
	retained bool
}

// watcher is a plain paho subscriber, the fleet operator's view.
type watcher struct {
	cli paho.Client
	ch  chan msg
}

type watchOpts struct {
	id         string
	clean      bool // false: persistent session, survives broker restarts
	user, pass string
	tls        *secrettest.PKI
}

func watch(t testing.TB, b *mqtttest.Broker, o watchOpts, filters ...string) *watcher {
	t.Helper()
	w := &watcher{ch: make(chan msg, 1000)}
	po := paho.NewClientOptions().AddBroker(b.URL()).SetClientID(o.id).SetCleanSession(o.clean).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(100 * time.Millisecond).
		SetMaxReconnectInterval(200 * time.Millisecond).SetKeepAlive(30 * time.Second).SetOrderMatters(true)
	if o.user != "" {
		po.SetUsername(o.user).SetPassword(o.pass)
	}
	if o.tls != nil {
		c := Conn{Broker: b.URL(), CAFile: o.tls.CAFile}
		cfg, err := c.tlsConfig("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		po.SetTLSConfig(cfg)
	}
	subs := map[string]byte{}
	for _, f := range filters {
		subs[f] = 1
	}
	handler := func(_ paho.Client, m paho.Message) {
		w.ch <- msg{topic: m.Topic(), payload: string(m.Payload()), retained: m.Retained()}
	}
	po.SetOnConnectHandler(func(c paho.Client) {
		if tok := c.SubscribeMultiple(subs, handler); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Errorf("watcher subscribe: %v", tok.Error())
		}
	})
	// Messages of a persistent session may arrive before OnConnect runs.
	po.SetDefaultPublishHandler(handler)
	w.cli = paho.NewClient(po)
	tok := w.cli.Connect()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher connect: %v", tok.Error())
	}
	t.Cleanup(func() { w.cli.Disconnect(0) })
	return w
}

// next returns the next message matching keep, failing after d.
func (w *watcher) next(t testing.TB, d time.Duration, keep func(msg) bool) msg {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case m := <-w.ch:
			if keep == nil || keep(m) {
				return m
			}
		case <-timeout:
			t.Fatalf("no matching message within %s", d)
			return msg{}
		}
	}
}

// quiet fails if a message matching keep arrives within d.
func (w *watcher) quiet(t testing.TB, d time.Duration, keep func(msg) bool) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case m := <-w.ch:
			if keep == nil || keep(m) {
				t.Fatalf("unexpected message %s %s", m.topic, m.payload)
			}
		case <-timeout:
			return
		}
	}
}

func onTopic(topic string) func(msg) bool { return func(m msg) bool { return m.topic == topic } }

// memQueue is the store's queue in memory: ordered, acknowledged through
// a sequence number, optionally dropping the oldest when full. Its item
// type is its own, as the store's is, so it goes through Adapt.
type memItem struct {
	Seq uint64
	Rec []byte
}

type memQueue struct {
	mu         sync.Mutex
	failAck    bool // a broken disk
	items      []memItem
	next       uint64
	max        int
	dropOldest bool
	dropped    uint64
}

func (q *memQueue) Push(rec []byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.max > 0 && len(q.items) >= q.max {
		if !q.dropOldest {
			return fmt.Errorf("queue full")
		}
		q.items = q.items[1:]
		q.dropped++
	}
	q.next++
	q.items = append(q.items, memItem{Seq: q.next, Rec: append([]byte(nil), rec...)})
	return nil
}

func (q *memQueue) Peek(n int) ([]memItem, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]memItem(nil), q.items[:min(n, len(q.items))]...), nil
}

func (q *memQueue) Ack(through uint64) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failAck {
		return 0, fmt.Errorf("disk on fire")
	}
	n := 0
	for len(q.items) > 0 && q.items[0].Seq <= through {
		q.items = q.items[1:]
		n++
	}
	return n, nil
}

func (q *memQueue) setFailAck(v bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.failAck = v
}

func (q *memQueue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// dialer hands the client one end of a pipe relayed to the broker, so a
// test can cut a connection the way a dead link does: the broker sees the
// socket close without a DISCONNECT, the client reads EOF. (Closing the
// client's own socket would not do: paho takes that for its own doing.)
type dialer struct {
	mu     sync.Mutex
	links  []func()
	refuse bool
	// stalled, when not nil, holds the client-to-broker direction of
	// every link until it is closed: a radio link that stopped moving
	// data without closing, so the client's writes block.
	stalled chan struct{}
}

// gate returns the channel a relay waits on before each read; a closed
// one when the link flows.
func (d *dialer) gate() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stalled != nil {
		return d.stalled
	}
	return flowing
}

var flowing = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// stall stops the client-to-broker direction; unstall resumes it.
func (d *dialer) stall() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stalled == nil {
		d.stalled = make(chan struct{})
	}
}

func (d *dialer) unstall() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stalled != nil {
		close(d.stalled)
		d.stalled = nil
	}
}

func (d *dialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.refuse {
		return nil, fmt.Errorf("test dialer: refusing")
	}
	upstream, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	local, far := net.Pipe()
	cut := func() { upstream.Close(); far.Close() }
	go func() { _, _ = io.Copy(far, upstream); cut() }()
	go func() {
		defer cut()
		buf := make([]byte, 32<<10)
		for {
			<-d.gate()
			n, err := far.Read(buf)
			if n > 0 {
				if _, werr := upstream.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	d.links = append(d.links, cut)
	return local, nil
}

// cut breaks the newest connection; refuse keeps new ones away.
func (d *dialer) cut(refuse bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.refuse = refuse
	if n := len(d.links); n > 0 {
		d.links[n-1]()
	}
}

func (d *dialer) allow() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.refuse = false
}
