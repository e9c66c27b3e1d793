package fleetload

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"cellagent/modem/clock"
	"cellagent/transport/mqtt"
)

// probeID is a device no gateway uses: the probe publishes under it until
// the reader shows it, which proves the reader subscribed.
const probeID = "fleetload-probe"

// reader follows the fleet the way `cellagent fleet watch --json` does:
// mqtt.Fleet hands each update to a queue on paho's delivering goroutine,
// and one loop encodes it as a JSON line for the output.
type reader struct {
	f   *fleet
	fl  *mqtt.Fleet
	out io.Writer // the watch's stdout; only its cost matters here
	wg  sync.WaitGroup

	mu      sync.Mutex
	pending []mqtt.Gateway
	maxPend int
	kick    chan struct{}

	delivered atomic.Int64 // updates of real gateways through the loop
	ready     atomic.Int64 // gateways shown online with telemetry
	probed    atomic.Bool

	views map[string]*view // the loop's own
}

// view is what the reader last showed of one gateway.
type view struct {
	k            key
	tele, online bool
	event        string
	counted      bool
}

func startReader(ctx context.Context, f *fleet) (*reader, error) {
	r := &reader{f: f, out: io.Discard, kick: make(chan struct{}, 1), views: map[string]*view{}}
	fl, err := mqtt.NewFleet(mqtt.FleetOptions{
		// As `cellagent fleet watch` connects.
		Conn: mqtt.Conn{
			Broker: f.o.Broker, AllowPlaintext: f.o.AllowPlaintext,
			KeepAlive: time.Minute, PingTimeout: 10 * time.Second, ConnectTimeout: 10 * time.Second,
		},
		Prefix:   f.o.Prefix,
		OnUpdate: r.push,
		Logger:   f.log,
	})
	if err != nil {
		return nil, fmt.Errorf("fleetload: reader: %w", err)
	}
	r.fl = fl
	pprof.Do(ctx, pprof.Labels("part", "reader"), func(ctx context.Context) {
		r.wg.Go(func() {
			if err := fl.Run(ctx); err != nil {
				f.log.Error("fleetload: reader", "err", err)
			}
		})
		r.wg.Go(func() { r.loop(ctx) })
	})
	return r, nil
}

// wait returns once the reader's goroutines ended (its context is done).
func (r *reader) wait() { r.wg.Wait() }

func (r *reader) push(g mqtt.Gateway) {
	r.mu.Lock()
	r.pending = append(r.pending, g)
	r.maxPend = max(r.maxPend, len(r.pending))
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *reader) pendingMax() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.maxPend
}

func (r *reader) online() int { return int(r.ready.Load()) }

func (r *reader) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		}
		r.mu.Lock()
		batch := r.pending
		r.pending = nil
		r.mu.Unlock()
		for _, g := range batch {
			line, err := json.Marshal(g)
			if err != nil {
				r.f.log.Error("fleetload: reader: encode", "gw", g.ID, "err", err)
				continue
			}
			_, _ = r.out.Write(append(line, '\n'))
			r.observe(g, time.Now())
		}
	}
}

// observe matches what the reader shows with what the gateways did.
func (r *reader) observe(g mqtt.Gateway, now time.Time) {
	if g.ID == probeID {
		r.probed.Store(true)
		return
	}
	gw := r.f.byID[g.ID]
	if gw == nil {
		return
	}
	r.delivered.Add(1)
	v := r.views[g.ID]
	if v == nil {
		v = &view{}
		r.views[g.ID] = v
	}
	v.online = g.Online
	// Status and events leave the reading as it was: a new reading is
	// a telemetry message.
	if g.Reg != "" || g.RSRP != nil {
		k := keyOf(g.Reg, g.RSSI, g.RSRP, g.SINR)
		if !v.tele || k != v.k {
			gw.shown(k, now)
		}
		v.k, v.tele = k, true
	}
	if !v.counted && v.online && v.tele {
		v.counted = true
		r.ready.Add(1)
	}
	if g.LastEvent != v.event {
		v.event = g.LastEvent
		if from, ok := smsFrom(g.LastEvent); ok {
			if s, ok := r.f.takeSMS(from); ok && s.device == g.ID {
				r.f.m.smsSeen.Add(1)
				if s.timed {
					r.f.m.addSMS(now.Sub(s.at))
				}
			}
		}
	}
}

// smsFrom reads the originator out of the fleet view's "sms in: from
// <number>, <n> part(s)".
func smsFrom(event string) (string, bool) {
	rest, ok := strings.CutPrefix(event, "sms in: from ")
	if !ok {
		return "", false
	}
	from, _, ok := strings.Cut(rest, ",")
	if !ok {
		return "", false
	}
	return from, true
}

// subscribed publishes a status for the probe device until the reader
// shows it: messages published before the reader subscribed would never
// reach it and would read as a backlog.
func (r *reader) subscribed(ctx context.Context) error {
	o := paho.NewClientOptions().AddBroker(r.f.o.Broker).SetClientID("cellagent-fleetload-probe").
		SetConnectTimeout(10 * time.Second)
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return fmt.Errorf("fleetload: probe connect %s: no answer within 10 s", r.f.o.Broker)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("fleetload: probe connect %s: %w", r.f.o.Broker, err)
	}
	defer c.Disconnect(100)
	topic := r.f.o.Prefix + "/" + probeID + "/" + string(mqtt.KindStatus)
	payload := fmt.Sprintf(`{"v":%d,"state":"offline","session":1}`, mqtt.SchemaVersion)
	deadline := time.Now().Add(15 * time.Second)
	for !r.probed.Load() {
		if time.Now().After(deadline) {
			return fmt.Errorf("fleetload: the fleet reader did not subscribe at %s within 15 s", r.f.o.Broker)
		}
		c.Publish(topic, 0, false, payload)
		if err := clock.Sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}
