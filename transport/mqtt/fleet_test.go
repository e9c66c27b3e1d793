package mqtt

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cellagent/transport/mqtt/mqtttest"
)

func ptr[T any](v T) *T { return &v }

func runFleet(t testing.TB, b *mqtttest.Broker, mod func(*FleetOptions)) *Fleet {
	t.Helper()
	o := FleetOptions{Conn: Conn{Broker: b.URL(), AllowPlaintext: true, ConnectTimeout: 5 * time.Second}, Prefix: "test/v1", Logger: testLogger(t)}
	if mod != nil {
		mod(&o)
	}
	f, err := NewFleet(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = f.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-f.ready:
	case <-time.After(5 * time.Second):
		t.Fatal("fleet reader did not subscribe")
	}
	return f
}

func gateway(f *Fleet, id string) (Gateway, bool) {
	for _, g := range f.Snapshot() {
		if g.ID == id {
			return g, true
		}
	}
	return Gateway{}, false
}

func TestFleetSnapshotAndList(t *testing.T) {
	t.Parallel()
	b := mqtttest.Start(t, mqtttest.Options{})
	f := runFleet(t, b, nil)
	r1 := newRig(t, b, func(o *Options) { o.Identity = Identity{Model: "BG96", Agent: "test"} })
	r2 := newRig(t, b, func(o *Options) { o.DeviceID = "dev2"; o.TelemetryQoS = 1 })
	waitFor(t, 5*time.Second, "both online", func() bool { return r1.c.Stats().Connected && r2.c.Stats().Connected })

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(r1.c.QueueTelemetry(Telemetry{Reg: Registration{CS: "searching", EPS: "home"}, Act: "CAT-M1", Operator: "26201", RSRP: ptr(-95), SINR: ptr(7.4), RSSI: ptr(-65)}))
	must(r1.c.QueueEvent(Event{Type: "recovery", Msg: "cfun reset"}))
	must(r2.c.QueueTelemetry(Telemetry{Reg: Registration{EPS: "roaming"}, Act: "NB-IoT", Operator: "23415", RSRP: ptr(-110)}))

	waitFor(t, 5*time.Second, "fleet snapshot", func() bool {
		g1, ok1 := gateway(f, "dev1")
		g2, ok2 := gateway(f, "dev2")
		return ok1 && ok2 && g1.LastEvent != "" && g1.Reg != "" && g2.Reg != ""
	})
	g1, _ := gateway(f, "dev1")
	if !g1.Online || g1.Session != 1 || g1.Model != "BG96" || g1.Reg != "home" || g1.Act != "CAT-M1" || g1.Operator != "26201" ||
		*g1.RSRP != -95 || *g1.SINR != 7.4 || *g1.RSSI != -65 || g1.LastEvent != "recovery: cfun reset" || g1.LastSeen.IsZero() || g1.LastEventAt.IsZero() {
		t.Fatalf("dev1 = %+v", g1)
	}

	// fleet list: a fresh reader learns both from retained messages.
	list, err := List(context.Background(), FleetOptions{Conn: Conn{Broker: b.URL(), AllowPlaintext: true}, Prefix: "test/v1"}, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "dev1" || list[1].ID != "dev2" || !list[1].Online || list[1].Reg != "roaming" || *list[1].RSRP != -110 || list[1].LastSeen.IsZero() {
		t.Fatalf("list = %+v", list)
	}

	// A gateway that stops shows offline.
	r2.stop(t)
	waitFor(t, 5*time.Second, "dev2 offline", func() bool { g, _ := gateway(f, "dev2"); return !g.Online })

	if _, err := List(context.Background(), FleetOptions{Conn: Conn{Broker: b.URL(), AllowPlaintext: true}, ShareGroup: "g"}, time.Millisecond); err == nil {
		t.Fatal("List accepted a shared subscription")
	}
	down := fmt.Sprintf("tcp://127.0.0.1:%d", mqtttest.FreePort(t))
	if _, err := List(context.Background(), FleetOptions{Conn: Conn{Broker: down, AllowPlaintext: true}}, time.Millisecond); err == nil {
		t.Fatal("List without a broker returned no error")
	}
}

// Two consumers in one share group split the telemetry between them.
func TestFleetSharedSubscription(t *testing.T) {
	t.Parallel()
	b := mqtttest.Start(t, mqtttest.Options{})
	r := newRig(t, b, func(o *Options) { o.TelemetryQoS = 1 })
	waitFor(t, 5*time.Second, "online", func() bool { return r.c.Stats().Connected })
	var counts [2]atomic.Int64
	var fleets [2]*Fleet
	for i := range fleets {
		fleets[i] = runFleet(t, b, func(o *FleetOptions) {
			o.ShareGroup = "backend"
			// Count telemetry only: mosquitto 2.0 also hands each shared
			// subscriber the retained birth, which MQTT 5 says it should not.
			o.OnUpdate = func(g Gateway) {
				if g.RSRP != nil {
					counts[i].Add(1)
				}
			}
		})
	}
	const n = 20
	for i := range n {
		if err := r.c.QueueTelemetry(Telemetry{RSRP: ptr(-90 - i)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "all telemetry consumed", func() bool { return counts[0].Load()+counts[1].Load() == n })
	time.Sleep(200 * time.Millisecond)
	a, c := counts[0].Load(), counts[1].Load()
	if a+c != n || a == 0 || c == 0 {
		t.Fatalf("consumers got %d and %d of %d", a, c, n)
	}
	for _, f := range fleets {
		if g, ok := gateway(f, "dev1"); !ok || g.Gaps != 0 {
			t.Fatalf("gateway = %+v", g)
		}
	}
}

func TestFleetApply(t *testing.T) {
	var mu sync.Mutex
	var updates []Gateway
	f, err := NewFleet(FleetOptions{Conn: Conn{Broker: "tls://b"}, OnUpdate: func(g Gateway) {
		mu.Lock()
		updates = append(updates, g)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	p := "cellagent/v1/gw/"
	steps := []struct {
		topic, payload string
		retained       bool
		changed        bool
		check          func(Gateway) bool
	}{
		{p + "status", `{"v":1,"state":"online","session":5,"ts":1700000000,"model":"BG96"}`, true, true,
			func(g Gateway) bool { return g.Online && g.Session == 5 && g.LastSeen.Unix() == 1700000000 }},
		{p + "telemetry", `{"v":1,"seq":1,"q":10,"ts":1700000100,"rsrp":-90}`, false, true,
			func(g Gateway) bool { return *g.RSRP == -90 && g.Gaps == 0 }},
		{p + "telemetry", `{"v":1,"seq":4,"q":13,"ts":1700000200,"rsrp":-99}`, false, true,
			func(g Gateway) bool { return g.Gaps == 2 }},
		// A duplicate (QoS 1 redelivery) is no gap and no step back.
		{p + "telemetry", `{"v":1,"seq":4,"q":13,"ts":1700000200,"rsrp":-99}`, false, true,
			func(g Gateway) bool { return g.Gaps == 2 && g.lastSeq == 4 }},
		// A will of an older session arriving late changes nothing.
		{p + "status", `{"v":1,"state":"offline","session":4}`, false, false, nil},
		{p + "status", `{"v":1,"state":"offline","session":5}`, false, true, func(g Gateway) bool { return !g.Online }},
		{p + "status", `{"v":2,"state":"online","session":6}`, false, false, nil},
		{p + "status", `{"v":1,"state":`, false, false, nil},
		{p + "telemetry", `{"v":1,"rsrp":"strong"}`, false, false, nil},
		{p + "sms/in", `{"v":1,"id":"x","from":"+49170","parts":1,"received":"2023-11-14T22:14:00Z"}`, false, true,
			func(g Gateway) bool {
				return g.LastEvent == "sms in: from +49170, 1 part(s)" && g.LastEventAt.Unix() == 1700000040
			}},
		{p + "sms/in", `{"v":1,"id":`, false, false, nil},
		{p + "sms/out/result", `{"v":1,"ts":1700000050,"id":"op-1","state":"failed","reason":"+CMS ERROR: 500"}`, false, true,
			func(g Gateway) bool { return g.LastEvent == "sms out: op-1 failed (+CMS ERROR: 500)" }},
		{"cellagent/v1/a/b/status", `{"v":1}`, false, false, nil},
		{p + "event", `{"v":3,"seq":1,"q":11,"ts":1700000300,"type":"sim","msg":"from the future"}`, false, false, nil},
		{p + "event", `{"v":2,"seq":1,"q":11,"ts":1700000300,"type":"sim","msg":"SIM removed","attrs":{"slot":1}}`, false, true,
			func(g Gateway) bool { return g.LastEvent == "sim: SIM removed" && g.LastEventAt.Unix() == 1700000300 }},
		{p + "status", ``, true, true, func(g Gateway) bool { return g.Removed && g.ID == "gw" }},
	}
	for i, s := range steps {
		g, changed := f.Apply(s.topic, []byte(s.payload), s.retained)
		if changed != s.changed || s.check != nil && !s.check(g) {
			t.Fatalf("step %d (%s %s): changed %v, gateway %+v", i, s.topic, s.payload, changed, g)
		}
	}
	if len(f.Snapshot()) != 0 {
		t.Fatalf("cleared gateway still listed: %+v", f.Snapshot())
	}
	if len(updates) != 9 || !updates[8].Removed {
		t.Fatalf("updates = %+v", updates)
	}
}

// TestListFailsWhenSubscribeIsNotGranted uses a broker that accepts the
// connection but never answers SUBSCRIBE, which no real broker can be made
// to do on purpose: List must give up with an error instead of waiting for
// retained messages until its context ends.
func TestListFailsWhenSubscribeIsNotGranted(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 512)
				if _, err := c.Read(buf); err != nil { // CONNECT
					return
				}
				_, _ = c.Write([]byte{0x20, 0x02, 0x00, 0x00}) // CONNACK, accepted
				_, _ = io.Copy(io.Discard, c)                  // SUBSCRIBE ignored
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	o := FleetOptions{Conn: Conn{Broker: "tcp://" + l.Addr().String(), AllowPlaintext: true, ConnectTimeout: 300 * time.Millisecond}}
	_, err = List(ctx, o, 100*time.Millisecond)
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "subscribe") {
		t.Fatalf("err = %v (context: %v), want a subscribe error before the deadline", err, ctx.Err())
	}
}

// The counts a fleet consumer exports: SMS and recovery events, each
// counted once however often QoS 1 delivers it; typed event attributes
// (numbers beside strings) do not cost the event; OnMessage sees the
// decoded message.
func TestFleetCounts(t *testing.T) {
	var kinds []Kind
	f, err := NewFleet(FleetOptions{Conn: Conn{Broker: "tls://b"}, OnMessage: func(_ Gateway, m FleetMessage) {
		kinds = append(kinds, m.Kind)
	}})
	if err != nil {
		t.Fatal(err)
	}
	ev := `{"v":1,"seq":1,"q":7,"ts":1735688400,"type":"recovery","level":"info","msg":"cfun-reset: done","attrs":{"step":"cfun-reset","outcome":"done","steps":2}}`
	for range 2 {
		f.Apply("cellagent/v1/gw/event", []byte(ev), false)
		f.Apply("cellagent/v1/gw/sms/in", []byte(`{"v":1,"seq":1,"q":8,"id":"a","received":"2025-01-01T00:00:03Z","parts":1,"pdus":[]}`), false)
	}
	f.Apply("cellagent/v1/gw/sms/out/result", []byte(`{"v":1,"seq":1,"q":9,"ts":1,"id":"x","state":"sent"}`), false)
	f.Apply("cellagent/v1/gw/sms/out/result", []byte(`{"v":1,"seq":2,"q":10,"ts":2,"id":"x","state":"delivered"}`), false)
	f.Apply("cellagent/v1/gw/telemetry", []byte(`{"v":1,"seq":1,"q":11,"ts":3,"reg":{"cs":"denied","eps":"home"},"rsrq":-9,"quota":{"sms_left":5},"health":{"up":9,"evq":1}}`), false)
	f.Apply("cellagent/v1/gw/telemetry", []byte(`{"v":1,"seq":2,"q":12,"ts":4,"reg":{"cs":"denied","eps":"home"},"rsrq":-10}`), false)
	g, _ := gateway(f, "gw")
	if g.Recoveries["cfun-reset/done"] != 1 || g.SMSIn != 1 || g.SMSOut["sent"] != 1 || g.SMSOut["delivered"] != 1 {
		t.Errorf("counts: recoveries %v, sms in %d, out %v", g.Recoveries, g.SMSIn, g.SMSOut)
	}
	if g.RegDomains.CS != "denied" || *g.RSRQ != -10 || g.Quota == nil || *g.Quota.SMSLeft != 5 || g.Health == nil || g.Health.EventsQueued != 1 {
		t.Errorf("state: %+v", g)
	}
	if len(kinds) != 8 || kinds[0] != KindEvent {
		t.Errorf("OnMessage saw %v", kinds)
	}
	// Snapshots share no maps with the reader.
	g.Recoveries["cfun-reset/done"] = 99
	if g2, _ := gateway(f, "gw"); g2.Recoveries["cfun-reset/done"] != 1 {
		t.Error("a snapshot's map is the reader's")
	}
}
