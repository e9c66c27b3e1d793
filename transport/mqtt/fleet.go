package mqtt

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"cellagent/modem/clock"
)

// FleetOptions configure a fleet-side reader.
type FleetOptions struct {
	Conn
	Prefix   string // default DefaultPrefix
	ClientID string // default cellagent-fleet-<random>
	// ShareGroup, when set, subscribes through $share/<group>/… so several
	// consumers split the gateways' messages between them. MQTT 5 says a
	// broker sends no retained messages to a shared subscription (some,
	// mosquitto 2.0 among them, do anyway), so such a reader cannot rely
	// on learning a gateway before its next message, and List refuses it.
	ShareGroup string
	// OnUpdate, when set, is called with the gateway after every message
	// that changed it, on the delivering goroutine: keep it short.
	OnUpdate func(Gateway)
	// OnMessage, when set, is called like OnUpdate but also with the
	// message that made the change, for consumers that keep more than
	// the current state (a history, a line-protocol stream).
	OnMessage func(Gateway, FleetMessage)
	Logger    *slog.Logger
	Clock     clock.Clock
}

// Gateway is the fleet's view of one device.
type Gateway struct {
	ID      string `json:"id"`
	Online  bool   `json:"online"`
	Session uint64 `json:"session,omitempty"`
	Identity
	Reg      string   `json:"reg,omitempty"` // overall registration
	Act      string   `json:"act,omitempty"`
	Operator string   `json:"op,omitempty"`
	RSSI     *int     `json:"rssi,omitempty"`
	RSRP     *int     `json:"rsrp,omitempty"`
	SINR     *float64 `json:"sinr,omitempty"`
	// RegDomains is the registration of each domain, from which Reg is
	// judged.
	RegDomains  Registration `json:"reg_domains,omitzero"`
	RSRQ        *int         `json:"rsrq,omitempty"`
	Quota       *Quota       `json:"quota,omitempty"`
	Health      *Health      `json:"health,omitempty"`
	LastSeen    time.Time    `json:"last_seen,omitzero"`
	LastEvent   string       `json:"last_event,omitempty"` // "<type>: <msg>"
	LastEventAt time.Time    `json:"last_event_at,omitzero"`
	// Gaps counts telemetry messages missing by their seq (QoS 0 losses);
	// a shared-subscription reader sees only part of the stream and does
	// not count them.
	Gaps uint64 `json:"gaps,omitempty"`
	// Counts of what this reader saw since it started, a QoS 1
	// redelivery counted once: SMS received, SMS results by state, and
	// recovery events by step and outcome ("<step>/<outcome>").
	SMSIn      uint64            `json:"sms_in,omitempty"`
	SMSOut     map[string]uint64 `json:"sms_out,omitempty"`
	Recoveries map[string]uint64 `json:"recoveries,omitempty"`
	// Removed is set on the update that drops a gateway whose retained
	// status was cleared; it is never in a snapshot.
	Removed bool `json:"removed,omitempty"`

	lastSeq uint64
	seenQ   [16]string // recent "<kind>:<q>" of counted messages
	seenAt  int
}

// FleetMessage is one decoded message as the reader applied it: Kind
// says which of the pointers is set. Payload is the message as received.
type FleetMessage struct {
	Topic     string
	Kind      Kind
	Retained  bool
	Status    *Status
	Telemetry *TelemetryMsg
	Event     *EventMsg
	SMSIn     *SMSInMsg
	SMSResult *SMSResultMsg
	Payload   []byte
}

// clone gives a copy that shares no map with g.
func (g *Gateway) clone() Gateway {
	c := *g
	c.SMSOut, c.Recoveries = maps.Clone(g.SMSOut), maps.Clone(g.Recoveries)
	return c
}

// fresh reports whether a counted message was not counted before:
// QoS 1 may deliver it again, and (device, kind, q) names it across
// redeliveries (SCHEMA.md). Only recent ones are remembered; a
// redelivery comes soon after the first copy.
func (g *Gateway) fresh(k Kind, q uint64) bool {
	key := string(k) + ":" + strconv.FormatUint(q, 10)
	if slices.Contains(g.seenQ[:], key) {
		return false
	}
	g.seenQ[g.seenAt] = key
	g.seenAt = (g.seenAt + 1) % len(g.seenQ)
	return true
}

// attrText is an event attribute as text, "" when absent, whatever
// JSON type it came as.
func attrText(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func count(m *map[string]uint64, key string) {
	if *m == nil {
		*m = map[string]uint64{}
	}
	(*m)[key]++
}

// Fleet keeps a snapshot of the gateways under a prefix.
type Fleet struct {
	o      FleetOptions
	tr     *transport
	log    *slog.Logger
	clock  clock.Clock
	shared bool

	mu       sync.Mutex
	gateways map[string]*Gateway

	ready    chan struct{} // closed after the first SUBACK
	subErr   chan error    // a failed subscribe, which List cannot wait out
	once     sync.Once
	activity chan struct{}
}

// NewFleet validates o. No network traffic happens before Run.
func NewFleet(o FleetOptions) (*Fleet, error) {
	tr, err := o.Conn.build()
	if err != nil {
		return nil, err
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if err := ValidatePrefix(o.Prefix); err != nil {
		return nil, fmt.Errorf("mqtt: config: prefix: %w", err)
	}
	if o.ShareGroup != "" {
		if err := ValidateLevel(o.ShareGroup); err != nil {
			return nil, fmt.Errorf("mqtt: config: share group: %w", err)
		}
	}
	if o.ClientID == "" {
		var b [6]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
		o.ClientID = "cellagent-fleet-" + hex.EncodeToString(b[:])
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clock.System
	}
	return &Fleet{
		o: o, tr: tr, log: o.Logger, clock: o.Clock, shared: o.ShareGroup != "",
		gateways: map[string]*Gateway{},
		ready:    make(chan struct{}),
		subErr:   make(chan error, 1),
		activity: make(chan struct{}, 1),
	}, nil
}

// Filters returns the subscriptions: status, telemetry, events and SMS
// traffic of every gateway, shared when a group is set.
func (f *Fleet) Filters() []string {
	var out []string
	for _, k := range []Kind{KindStatus, KindTelemetry, KindEvent, KindSMSIn, KindSMSResult} {
		filter := f.o.Prefix + "/+/" + string(k)
		if f.shared {
			filter = "$share/" + f.o.ShareGroup + "/" + filter
		}
		out = append(out, filter)
	}
	return out
}

// Run follows the fleet until ctx ends, reconnecting as needed; it
// returns nil then. A fleet reader runs on a wired host, so paho's own
// reconnect serves here; a clean session makes every reconnect deliver
// the retained status and telemetry again.
func (f *Fleet) Run(ctx context.Context) error { return f.run(ctx, true) }

func (f *Fleet) run(ctx context.Context, retry bool) error {
	o := f.tr.pahoOptions(ctx, f.o.ClientID, nil)
	o.SetCleanSession(true)
	o.SetAutoReconnect(true)
	o.SetConnectRetry(retry)
	o.SetConnectRetryInterval(5 * time.Second)
	o.SetMaxReconnectInterval(time.Minute)
	filters := map[string]byte{}
	for _, flt := range f.Filters() {
		filters[flt] = 1
	}
	o.SetOnConnectHandler(func(cli paho.Client) {
		tok := cli.SubscribeMultiple(filters, func(_ paho.Client, m paho.Message) {
			f.Apply(m.Topic(), m.Payload(), m.Retained())
		})
		if err := waitToken(ctx, tok, nil, f.tr.timeout); err != nil {
			f.log.Error("mqtt: fleet subscribe", "err", err)
			select {
			case f.subErr <- err:
			default:
			}
			return
		}
		f.once.Do(func() { close(f.ready) })
	})
	o.SetConnectionLostHandler(func(_ paho.Client, err error) {
		f.log.Warn("mqtt: fleet connection lost, reconnecting", "err", err)
	})
	cli := paho.NewClient(o)
	tok := cli.Connect()
	defer cli.Disconnect(250)
	if !retry {
		if err := waitToken(ctx, tok, nil, f.tr.timeout); err != nil {
			return fmt.Errorf("mqtt: fleet connect %s: %w", f.tr.url.Redacted(), err)
		}
	}
	<-ctx.Done()
	return nil
}

// List connects once, collects the retained status and telemetry of every
// gateway until no message has arrived for settle, and returns the
// snapshot: the basis of `cellagent fleet list`.
func List(ctx context.Context, o FleetOptions, settle time.Duration) ([]Gateway, error) {
	if o.ShareGroup != "" {
		return nil, errors.New("mqtt: fleet list needs retained messages, which shared subscriptions do not get")
	}
	f, err := NewFleet(o)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- f.run(ctx, false) }()
	select {
	case <-f.ready:
	case err := <-f.subErr:
		cancel()
		<-errc
		return nil, fmt.Errorf("mqtt: fleet subscribe: %w", err)
	case err := <-errc:
		if err == nil {
			err = ctx.Err()
		}
		return nil, err
	}
	for {
		select {
		case <-f.activity:
		case <-f.clock.After(settle):
			cancel()
			<-errc
			return f.Snapshot(), nil
		case <-ctx.Done():
			<-errc
			return nil, ctx.Err()
		}
	}
}

// Snapshot returns the gateways sorted by id.
func (f *Fleet) Snapshot() []Gateway {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Gateway, 0, len(f.gateways))
	for _, g := range f.gateways {
		out = append(out, g.clone())
	}
	slices.SortFunc(out, func(a, b Gateway) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Apply folds one message into the snapshot and reports whether it
// changed a gateway. Malformed payloads, unknown topics and payloads of a
// newer schema are logged and ignored: one bad gateway must not blind the
// fleet view.
func (f *Fleet) Apply(topic string, payload []byte, retained bool) (Gateway, bool) {
	select {
	case f.activity <- struct{}{}:
	default:
	}
	p, ok := ParseTopic(f.o.Prefix, topic)
	if !ok || p.Kind == "" {
		return Gateway{}, false
	}
	now := f.clock.Now()
	f.mu.Lock()
	msg := FleetMessage{Topic: topic, Kind: p.Kind, Retained: retained, Payload: payload}
	g, changed := f.apply(p, &msg, now)
	var out Gateway
	if g != nil {
		out = g.clone()
	}
	f.mu.Unlock()
	if changed && f.o.OnUpdate != nil {
		f.o.OnUpdate(out)
	}
	if changed && f.o.OnMessage != nil {
		f.o.OnMessage(out, msg)
	}
	return out, changed
}

func (f *Fleet) apply(p ParsedTopic, msg *FleetMessage, now time.Time) (*Gateway, bool) {
	payload, retained := msg.Payload, msg.Retained
	if len(payload) == 0 {
		// An empty retained status is an operator clearing a gateway
		// that is gone for good.
		if p.Kind != KindStatus {
			return nil, false
		}
		delete(f.gateways, p.Device)
		return &Gateway{ID: p.Device, Removed: true}, true
	}
	var v struct {
		V int `json:"v"`
	}
	if err := json.Unmarshal(payload, &v); err != nil || v.V < 1 || v.V > Version(p.Kind) {
		f.log.Warn("mqtt: fleet: ignoring payload", "topic", p.Device+"/"+string(p.Kind), "v", v.V, "err", err)
		return nil, false
	}
	g := f.gateways[p.Device]
	if g == nil {
		g = &Gateway{ID: p.Device}
	}
	seen := func(ts int64) {
		if !retained {
			g.LastSeen = now
		} else if t := time.Unix(ts, 0); ts > 0 && t.After(g.LastSeen) {
			g.LastSeen = t
		}
	}
	switch p.Kind {
	case KindStatus:
		var st Status
		if err := json.Unmarshal(payload, &st); err != nil {
			f.log.Warn("mqtt: fleet: bad status", "device", p.Device, "err", err)
			return nil, false
		}
		// A will is published up to 1.5 keep-alives after the link died,
		// possibly after the gateway's next birth: an offline of an older
		// session than the one known is stale.
		if st.State == Offline && st.Session < g.Session {
			return nil, false
		}
		msg.Status = &st
		g.Online, g.Session = st.State == Online, st.Session
		if st.State == Online {
			g.Identity = st.Identity
			g.lastSeq = 0
		}
		seen(st.TS)
	case KindTelemetry:
		var m TelemetryMsg
		if err := json.Unmarshal(payload, &m); err != nil {
			f.log.Warn("mqtt: fleet: bad telemetry", "device", p.Device, "err", err)
			return nil, false
		}
		msg.Telemetry = &m
		g.Reg, g.RegDomains, g.Act, g.Operator = m.Reg.Overall(), m.Reg, m.Act, m.Operator
		g.RSSI, g.RSRP, g.RSRQ, g.SINR = m.RSSI, m.RSRP, m.RSRQ, m.SINR
		// Quota and health are read less often than the signal: a
		// sample without them keeps the last known.
		if m.Quota != nil {
			g.Quota = m.Quota
		}
		if m.Health != nil {
			g.Health = m.Health
		}
		if !retained && !f.shared {
			if g.lastSeq > 0 && m.Seq > g.lastSeq+1 {
				g.Gaps += m.Seq - g.lastSeq - 1
			}
			if m.Seq > g.lastSeq || m.Seq == 1 {
				g.lastSeq = m.Seq
			}
		}
		seen(m.TS)
	case KindEvent:
		var m EventMsg
		// An attribute of another JSON type than Attrs holds (typed
		// attributes from a newer agent) costs that attribute only:
		// Unmarshal decodes the rest and reports the first such value.
		var te *json.UnmarshalTypeError
		if err := json.Unmarshal(payload, &m); err != nil && !(errors.As(err, &te) && (te.Field == "attrs" || strings.HasSuffix(te.Field, ".attrs"))) {
			f.log.Warn("mqtt: fleet: bad event", "device", p.Device, "err", err)
			return nil, false
		}
		msg.Event = &m
		if m.Type == EventRecovery && g.fresh(KindEvent, m.Q) {
			count(&g.Recoveries, attrText(m.Attrs["step"])+"/"+attrText(m.Attrs["outcome"]))
		}
		g.LastEvent = m.Type
		if m.Msg != "" {
			g.LastEvent += ": " + m.Msg
		}
		g.LastEventAt = time.Unix(m.TS, 0)
		seen(m.TS)
	case KindSMSIn:
		// SMS count as events in the view: an operator watching a gateway
		// wants to see a message arrive; the message itself is for the
		// application subscribed to sms/in.
		var m SMSInMsg
		if err := json.Unmarshal(payload, &m); err != nil {
			f.log.Warn("mqtt: fleet: bad sms/in", "device", p.Device, "err", err)
			return nil, false
		}
		msg.SMSIn = &m
		if g.fresh(KindSMSIn, m.Q) {
			g.SMSIn++
		}
		g.LastEvent = fmt.Sprintf("sms in: from %s, %d part(s)", m.From, m.Parts)
		g.LastEventAt = m.Received
		seen(m.Received.Unix())
	case KindSMSResult:
		var m SMSResultMsg
		if err := json.Unmarshal(payload, &m); err != nil {
			f.log.Warn("mqtt: fleet: bad sms/out/result", "device", p.Device, "err", err)
			return nil, false
		}
		msg.SMSResult = &m
		if g.fresh(KindSMSResult, m.Q) {
			count(&g.SMSOut, m.State)
		}
		g.LastEvent = "sms out: " + m.ID + " " + m.State
		if m.Reason != "" {
			g.LastEvent += " (" + m.Reason + ")"
		}
		g.LastEventAt = time.Unix(m.TS, 0)
		seen(m.TS)
	default:
		return nil, false
	}
	f.gateways[p.Device] = g
	return g, true
}
