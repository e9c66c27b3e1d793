package fleetload

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"cellagent/agent"
	"cellagent/agent/config"
	"cellagent/modem/bg96emu"
	"cellagent/modem/clock"
	"cellagent/transport/mqtt"
)

// gateway is one simulated BG96 and the agent that drives it.
type gateway struct {
	f   *fleet
	i   int
	id  string // the SIM's ICCID, which is also the device id
	dir string
	m   *bg96emu.Modem

	// The driver's own state.
	sig        bg96emu.Signal
	registered bool

	mu     sync.Mutex
	sent   []onWire // telemetry written to the socket, not yet seen by the reader
	change *change  // the last signal change the reader has not shown yet
}

// onWire is a telemetry PUBLISH as the agent wrote it.
type onWire struct {
	k  key
	at time.Time
}

// change is a signal change made by the driver; polled is the telemetry
// poll's first AT+QCSQ after it, the one that read it.
type change struct {
	k          key
	at, polled time.Time
}

// key is a telemetry reading as both the agent's PUBLISH and the reader's
// gateway view carry it; the driver's changes make consecutive readings
// of one gateway differ.
type key struct {
	reg        string
	rssi, rsrp int
	sinr       float64
	has        uint8 // which of rssi, rsrp, sinr are known
}

func keyOf(reg string, rssi, rsrp *int, sinr *float64) key {
	k := key{reg: reg}
	if rssi != nil {
		k.rssi, k.has = *rssi, k.has|1
	}
	if rsrp != nil {
		k.rsrp, k.has = *rsrp, k.has|2
	}
	if sinr != nil {
		k.sinr, k.has = *sinr, k.has|4
	}
	return k
}

func (k key) sameSignal(o key) bool {
	return k.rssi == o.rssi && k.rsrp == o.rsrp && k.sinr == o.sinr && k.has == o.has
}

// home is the registration the simulator starts with; outages end in it.
var home = bg96emu.Registration{Stat: bg96emu.Home, Area: "1A2B", Cell: "01A2B3C", AcT: bg96emu.ActEMTC}

func newGateway(f *fleet, i int) *gateway {
	return &gateway{
		f: f, i: i, dir: gatewayDir(f.dir, i),
		// 20 digits as on the operator's SIMs, unique per gateway.
		id: fmt.Sprintf("89882280666%09d", i),
		// The simulator's own start: the walk goes on from there.
		sig:        bg96emu.Signal{Act: "CAT-M1", RSSI: -65, RSRP: -95, SINR: 12, RSRQ: -11},
		registered: true,
	}
}

// start brings up the modem and runs the agent on it until ctx ends.
func (g *gateway) start(ctx context.Context, agents *sync.WaitGroup) error {
	if err := os.MkdirAll(g.dir, 0o700); err != nil {
		return fmt.Errorf("fleetload: gateway %d: %w", g.i, err)
	}
	g.m = bg96emu.New(bg96emu.Config{
		ICCID: g.id, IMEI: fmt.Sprintf("8664250%08d", g.i), Baud: g.f.o.Baud,
	})
	var err error
	// The modem outlives the agent's context: an agent drains while its
	// port still answers, and close ends the modem after.
	pprof.Do(context.WithoutCancel(ctx), pprof.Labels("part", "modem"), func(ctx context.Context) { err = g.m.Start(ctx) })
	if err != nil {
		return fmt.Errorf("fleetload: gateway %d: %w (ptys in use and allowed: /proc/sys/kernel/pty/nr and max)", g.i, err)
	}
	tty := filepath.Join(g.dir, "tty")
	if err := g.m.Link(tty); err != nil {
		return fmt.Errorf("fleetload: gateway %d: %w", g.i, err)
	}
	o := g.f.o
	cfg := config.Default()
	// Set rather than read from the SIM: an agent whose modem is slow to
	// answer while a thousand start would report under the host name.
	cfg.Device.ID = g.id
	cfg.Modem.Port = tty
	cfg.State.Dir = filepath.Join(g.dir, "state")
	cfg.MQTT.Broker, cfg.MQTT.AllowPlaintext, cfg.MQTT.Prefix = o.Broker, o.AllowPlaintext, o.Prefix
	cfg.Telemetry.Poll.Duration = o.Poll
	cfg.Telemetry.Heartbeat.Duration = o.Heartbeat
	opts := agent.Options{
		Config:   cfg,
		Version:  "fleetload",
		Logger:   slog.New(counting{h: g.f.log.Handler(), n: &g.f.m.warnings}).With("gw", g.id),
		OpenPort: g.openPort,
		Dial:     g.dial,
	}
	agents.Add(1)
	pprof.Do(ctx, pprof.Labels("part", "agent"), func(ctx context.Context) {
		go func() {
			defer agents.Done()
			if err := agent.Run(ctx, opts); err != nil {
				g.f.log.Error("fleetload: agent stopped", "gw", g.id, "err", err)
			}
		}()
	})
	return nil
}

func (g *gateway) close() {
	if g.m != nil {
		g.m.Close()
	}
}

// openPort is the agent's serial port with a tap that notes when it asks
// for the serving signal.
func (g *gateway) openPort(path string, baud int) (io.ReadWriteCloser, error) {
	p, err := openPTY(path, baud)
	if err != nil {
		return nil, err
	}
	return &serialTap{ReadWriteCloser: p, g: g}, nil
}

// serialTap notes the telemetry poll's AT+QCSQ. The supervisor reads the
// signal too, on its own schedule; bg96.Status, which the telemetry loop
// polls, is the reader that asks AT+QNWINFO shortly before.
type serialTap struct {
	io.ReadWriteCloser
	g     *gateway
	armed atomic.Bool // AT+QNWINFO went out; its poll's AT+QCSQ is next
}

var (
	qnwinfo = []byte("AT+QNWINFO")
	qcsq    = []byte("AT+QCSQ")
)

func (t *serialTap) Write(p []byte) (int, error) {
	switch {
	case bytes.HasPrefix(p, qnwinfo):
		t.armed.Store(true)
	case bytes.HasPrefix(p, qcsq):
		if t.armed.Swap(false) {
			t.g.polled(time.Now())
		}
	}
	return t.ReadWriteCloser.Write(p)
}

func (g *gateway) polled(at time.Time) {
	g.mu.Lock()
	if c := g.change; c != nil && c.polled.IsZero() && at.After(c.at) {
		c.polled = at
	}
	g.mu.Unlock()
}

// dial is the agent's broker connection with a tap on what it writes.
func (g *gateway) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &wireTap{Conn: c, g: g}, nil
}

type wireTap struct {
	net.Conn
	g *gateway
}

// Write sees one whole MQTT packet per call: paho writes each packet with
// a single Write.
func (t *wireTap) Write(p []byte) (int, error) {
	at := time.Now()
	n, err := t.Conn.Write(p)
	if n == len(p) && len(p) > 0 && p[0]>>4 == packets.Publish {
		t.g.wrote(p, at)
	}
	return n, err
}

func (g *gateway) wrote(p []byte, at time.Time) {
	pk, err := packets.ReadPacket(bytes.NewReader(p))
	if err != nil {
		return
	}
	pub, ok := pk.(*packets.PublishPacket)
	if !ok {
		return
	}
	g.f.m.published.Add(1)
	if !strings.HasSuffix(pub.TopicName, "/"+string(mqtt.KindTelemetry)) {
		return
	}
	var t mqtt.TelemetryMsg
	if err := json.Unmarshal(pub.Payload, &t); err != nil {
		return
	}
	g.f.m.telemetry.Add(1)
	k := keyOf(t.Reg.Overall(), t.RSSI, t.RSRP, t.SINR)
	g.mu.Lock()
	g.sent = append(g.sent, onWire{k, at})
	// Bounded: readings the reader never shows (a heartbeat repeats the
	// last one) would otherwise pile up.
	if len(g.sent) > 64 {
		g.sent = g.sent[len(g.sent)-64:]
	}
	g.mu.Unlock()
}

// shown is the reader showing reading k at now: it is matched with the
// PUBLISH that carried it and, for a signal change, with the poll that
// read it. Per gateway the broker keeps the agent's order, so earlier
// readings still waiting were superseded.
func (g *gateway) shown(k key, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var wrote time.Time
	for i, w := range g.sent {
		if w.k == k {
			wrote = w.at
			g.sent = g.sent[i+1:]
			break
		}
	}
	if wrote.IsZero() {
		return
	}
	g.f.m.addPub(now, now.Sub(wrote))
	if c := g.change; c != nil && c.k.sameSignal(k) {
		// A PUBLISH from before the poll carried an older reading that
		// happens to equal the new one: not this change's.
		if !c.polled.IsZero() && wrote.After(c.polled) {
			g.f.m.addRead(now, now.Sub(c.polled), c.polled.Sub(c.at))
			g.change = nil
		}
	}
}

// drive plays the gateway's random events until ctx ends. The schedule is
// drawn on a timeline of its own from the gateway's seeded stream, so a
// seed gives every gateway the same events in the same order.
func (g *gateway) drive(ctx context.Context, seed uint64) {
	rng := newRand(seed, g.i)
	o := g.f.o
	start := time.Now()
	after := func(t time.Time, mean time.Duration) time.Time {
		if mean < 0 {
			return time.Time{}
		}
		return t.Add(time.Duration(rng.ExpFloat64() * float64(mean)))
	}
	sig, out, msg := after(start, o.SignalEvery), after(start, o.OutageEvery), after(start, o.SMSEvery)
	var back time.Time // end of the outage under way
	defer func() {
		// The network comes back when the drive ends, so messages it
		// holds reach the reader while the run settles.
		if !back.IsZero() {
			if err := g.m.SetRegistration(bg96emu.AllDomains, home); err != nil {
				g.f.log.Error("fleetload: driving the simulator", "gw", g.id, "err", err)
			}
		}
	}()
	for {
		due := time.Time{}
		for _, t := range []time.Time{sig, out, msg, back} {
			if !t.IsZero() && (due.IsZero() || t.Before(due)) {
				due = t
			}
		}
		if due.IsZero() {
			<-ctx.Done()
			return
		}
		if clock.Sleep(ctx, time.Until(due)) != nil {
			return
		}
		var err error
		switch due {
		case back:
			err = g.m.SetRegistration(bg96emu.AllDomains, home)
			g.registered, back = true, time.Time{}
		case sig:
			err = g.changeSignal(rng)
			sig = after(sig, o.SignalEvery)
		case out:
			if back.IsZero() {
				err = g.m.SetRegistration(bg96emu.AllDomains, bg96emu.Registration{Stat: bg96emu.Searching})
				g.registered = false
				back = out.Add(5*time.Second + time.Duration(rng.Int64N(int64(25*time.Second))))
				g.f.m.outages.Add(1)
			}
			out = after(out, o.OutageEvery)
		case msg:
			err = g.deliverSMS()
			msg = after(msg, o.SMSEvery)
		}
		if err != nil {
			g.f.log.Error("fleetload: driving the simulator", "gw", g.id, "err", err)
		}
	}
}

// changeSignal walks the signal by 4-9 dB of RSRP, beyond the agent's
// 3 dB dead-band, so every change is reported.
func (g *gateway) changeSignal(rng *rand.Rand) error {
	s := g.sig
	step := 4 + rng.IntN(6)
	if rng.IntN(2) == 0 {
		step = -step
	}
	r := s.RSRP + step
	if r < -125 || r > -75 {
		r = s.RSRP - step
	}
	s.RSRP = r
	s.RSSI = r + 27 + rng.IntN(7)
	s.SINR = rng.IntN(31) - 5
	s.RSRQ = -5 - rng.IntN(15)
	g.sig = s
	sinr := float64(s.SINR)
	g.mu.Lock()
	g.change = &change{k: keyOf("", &s.RSSI, &s.RSRP, &sinr), at: time.Now()}
	g.mu.Unlock()
	g.f.m.changes.Add(1)
	return g.m.SetSignal(s)
}

// deliverSMS has the network hand the modem a message from an originator
// no other message uses, so the reader's "sms in: from …" names it.
func (g *gateway) deliverSMS() error {
	n := g.f.m.smsSent.Add(1)
	from := fmt.Sprintf("+49170%08d", n)
	// While unregistered the network holds the message: its latency
	// would measure the outage.
	g.f.sentSMS(from, smsSent{at: time.Now(), timed: g.registered, device: g.id})
	return g.m.DeliverText(from, "fleetload "+from)
}

// counting passes on the agents' warnings and errors and counts them;
// their info lines would only cost a thousand agents' CPU.
type counting struct {
	h slog.Handler
	n *atomic.Int64
}

func (c counting) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (c counting) Handle(ctx context.Context, r slog.Record) error {
	c.n.Add(1)
	if !c.h.Enabled(ctx, r.Level) {
		return nil
	}
	return c.h.Handle(ctx, r)
}

func (c counting) WithAttrs(a []slog.Attr) slog.Handler { return counting{c.h.WithAttrs(a), c.n} }
func (c counting) WithGroup(n string) slog.Handler      { return counting{c.h.WithGroup(n), c.n} }
