// Package fleetview is the live web view of a fleet: one embedded page
// (no external assets, so it works offline on a bench) fed by
// server-sent events, over a history kept beside the fleet reader's
// state: signal samples per gateway for the sparklines, recovery steps
// and other events for the timeline, and the last SMS of each gateway.
//
// The JSON it serves is a versioned contract documented in
// docs/fleet-tools.md.
package fleetview

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"cellagent/modem/clock"
	"cellagent/transport/mqtt"
)

// Version is the "v" of every payload.
const Version = 1

// Options configure a View; zero values take the defaults.
type Options struct {
	// Window is how far back the signal history goes (default 6 h);
	// samples are kept one per Resolution (default 1 min), the last of
	// each.
	Window, Resolution time.Duration
	// Interval batches updates to the browsers (default 250 ms): a
	// thousand gateways change many times a second.
	Interval time.Duration
	// Clock dates the window and the messages (clock.System when nil).
	Clock clock.Clock
}

// Sample is one signal reading: [unix s, rsrp dBm or null, sinr dB or
// null] in JSON.
type Sample struct {
	TS   int64
	RSRP *int
	SINR *float64
}

// MarshalJSON writes the compact array form.
func (s Sample) MarshalJSON() ([]byte, error) {
	return json.Marshal([]any{s.TS, s.RSRP, s.SINR})
}

// UnmarshalJSON reads the array form.
func (s *Sample) UnmarshalJSON(b []byte) error {
	var a []json.RawMessage
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	if len(a) != 3 {
		return fmt.Errorf("fleetview: sample of %d elements, want 3", len(a))
	}
	if err := json.Unmarshal(a[0], &s.TS); err != nil {
		return err
	}
	if err := json.Unmarshal(a[1], &s.RSRP); err != nil {
		return err
	}
	return json.Unmarshal(a[2], &s.SINR)
}

// Event is one line of a timeline.
type Event struct {
	TS      int64  `json:"ts"`
	Gateway string `json:"gateway"`
	Kind    string `json:"kind"` // an event type, "status", "sms_in" or "sms_out"
	Level   string `json:"level,omitempty"`
	Msg     string `json:"msg"`
}

// Row is a gateway's line in the fleet table.
type Row struct {
	ID          string   `json:"id"`
	State       string   `json:"state"` // online, offline, unknown (telemetry, no status yet)
	Reg         string   `json:"reg,omitempty"`
	Act         string   `json:"act,omitempty"`
	Operator    string   `json:"op,omitempty"`
	RSSI        *int     `json:"rssi,omitempty"`
	RSRP        *int     `json:"rsrp,omitempty"`
	RSRQ        *int     `json:"rsrq,omitempty"`
	SINR        *float64 `json:"sinr,omitempty"`
	LastSeen    int64    `json:"last_seen,omitempty"`
	LastEvent   string   `json:"last_event,omitempty"`
	LastEventAt int64    `json:"last_event_at,omitempty"`
	Gaps        uint64   `json:"gaps,omitempty"`
	Recoveries  uint64   `json:"recoveries,omitempty"`
	// Spark is the signal history thinned to at most SparkPoints.
	Spark []Sample `json:"spark"`
}

// SparkPoints bounds a table row's sparkline.
const SparkPoints = 60

// Message is what the event stream carries: a "snapshot" first, then
// "update"s with the rows that changed, the gateways removed and the new
// events.
type Message struct {
	V        int      `json:"v"`
	Type     string   `json:"type"`
	Now      int64    `json:"now"`
	Gateways []Row    `json:"gateways"`
	Removed  []string `json:"removed,omitempty"`
	Events   []Event  `json:"events"`
}

// Detail is a gateway's page.
type Detail struct {
	V        int           `json:"v"`
	Gateway  Row           `json:"gateway"`
	Identity mqtt.Identity `json:"identity"`
	Session  uint64        `json:"session,omitempty"`
	Samples  []Sample      `json:"samples"`
	Events   []Event       `json:"events"`
	SMS      []Event       `json:"sms"`
}

const (
	maxEvents     = 200 // fleet timeline
	maxGwEvents   = 50
	maxGwSMS      = 20
	subscriberBuf = 64
)

type entry struct {
	g       mqtt.Gateway
	samples []Sample
	events  []Event
	sms     []Event
}

// View is the history and the subscribers.
type View struct {
	o Options

	mu      sync.Mutex
	gws     map[string]*entry
	events  []Event
	dirty   map[string]bool
	removed []string
	fresh   []Event
	subs    map[chan []byte]struct{}
}

// New returns an empty view.
func New(o Options) *View {
	if o.Window <= 0 {
		o.Window = 6 * time.Hour
	}
	if o.Resolution <= 0 {
		o.Resolution = time.Minute
	}
	if o.Interval <= 0 {
		o.Interval = 250 * time.Millisecond
	}
	if o.Clock == nil {
		o.Clock = clock.System
	}
	return &View{o: o, gws: map[string]*entry{}, dirty: map[string]bool{}, subs: map[chan []byte]struct{}{}}
}

// Apply folds one message the fleet reader applied: it is the reader's
// OnMessage.
func (v *View) Apply(g mqtt.Gateway, m mqtt.FleetMessage) {
	now := v.o.Clock.Now()
	v.mu.Lock()
	defer v.mu.Unlock()
	if g.Removed {
		delete(v.gws, g.ID)
		delete(v.dirty, g.ID)
		v.removed = append(v.removed, g.ID)
		return
	}
	e := v.gws[g.ID]
	if e == nil {
		e = &entry{}
		v.gws[g.ID] = e
	}
	wasOnline, known := e.g.Online, e.g.ID != ""
	e.g = g
	v.dirty[g.ID] = true
	var ev *Event
	switch {
	case m.Telemetry != nil:
		t := m.Telemetry
		if t.RSRP != nil || t.SINR != nil {
			ts := t.TS
			if ts <= 0 {
				ts = now.Unix()
			}
			e.addSample(Sample{TS: ts, RSRP: t.RSRP, SINR: t.SINR}, v.o.Resolution, now.Add(-v.o.Window).Unix())
		}
	case m.Event != nil:
		ev = &Event{TS: m.Event.TS, Gateway: g.ID, Kind: m.Event.Type, Level: m.Event.Level, Msg: m.Event.Msg}
	case m.SMSIn != nil:
		ev = &Event{TS: m.SMSIn.Received.Unix(), Gateway: g.ID, Kind: "sms_in", Level: "info",
			Msg: fmt.Sprintf("from %s, %d part(s), id %s", m.SMSIn.From, m.SMSIn.Parts, m.SMSIn.ID)}
		e.sms = appendCapped(e.sms, *ev, maxGwSMS)
	case m.SMSResult != nil:
		r := m.SMSResult
		level := "info"
		if r.State == "failed" {
			level = "warn"
		}
		msg := r.ID + " " + r.State
		if r.Reason != "" {
			msg += " (" + r.Reason + ")"
		}
		ev = &Event{TS: r.TS, Gateway: g.ID, Kind: "sms_out", Level: level, Msg: msg}
		e.sms = appendCapped(e.sms, *ev, maxGwSMS)
	case m.Status != nil && !m.Retained && (!known || wasOnline != g.Online):
		// Replayed retained states say where a gateway is, not that it
		// just changed.
		level, msg := "info", fmt.Sprintf("online, session %d", g.Session)
		if !g.Online {
			level, msg = "warn", fmt.Sprintf("offline, session %d", g.Session)
			if m.Status.Clean {
				msg += " (clean shutdown)"
			}
		}
		ev = &Event{TS: now.Unix(), Gateway: g.ID, Kind: "status", Level: level, Msg: msg}
	}
	if ev != nil {
		e.events = appendCapped(e.events, *ev, maxGwEvents)
		v.events = appendCapped(v.events, *ev, maxEvents)
		v.fresh = append(v.fresh, *ev)
	}
}

func appendCapped[T any](s []T, x T, n int) []T {
	s = append(s, x)
	if len(s) > n {
		s = slices.Delete(s, 0, len(s)-n)
	}
	return s
}

// addSample keeps one sample per resolution step, the newest, and none
// older than since.
func (e *entry) addSample(s Sample, res time.Duration, since int64) {
	step := int64(res / time.Second)
	if n := len(e.samples); n > 0 && step > 0 && e.samples[n-1].TS/step == s.TS/step {
		e.samples[n-1] = s
	} else {
		e.samples = append(e.samples, s)
	}
	i := 0
	for i < len(e.samples) && e.samples[i].TS < since {
		i++
	}
	if i > 0 {
		e.samples = slices.Delete(e.samples, 0, i)
	}
}

func (e *entry) row() Row {
	g := &e.g
	state := "offline"
	switch {
	case g.Online:
		state = "online"
	case g.Session == 0 && g.Identity == (mqtt.Identity{}):
		state = "unknown"
	}
	r := Row{
		ID: g.ID, State: state, Reg: g.Reg, Act: g.Act, Operator: g.Operator,
		RSSI: g.RSSI, RSRP: g.RSRP, RSRQ: g.RSRQ, SINR: g.SINR,
		LastSeen: unix(g.LastSeen), LastEvent: g.LastEvent, LastEventAt: unix(g.LastEventAt), Gaps: g.Gaps,
		Spark: thin(e.samples, SparkPoints),
	}
	for _, n := range g.Recoveries {
		r.Recoveries += n
	}
	return r
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// thin picks at most n samples spread evenly, the newest always kept.
func thin(s []Sample, n int) []Sample {
	if len(s) <= n {
		return slices.Clone(s)
	}
	out := make([]Sample, 0, n)
	for i := range n {
		out = append(out, s[(len(s)-1)-(n-1-i)*(len(s)-1)/(n-1)])
	}
	return out
}

// Snapshot is the first message of a stream and the body of /api/fleet.
func (v *View) Snapshot() Message {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.snapshot()
}

func (v *View) snapshot() Message {
	m := Message{V: Version, Type: "snapshot", Now: v.o.Clock.Now().Unix(), Gateways: make([]Row, 0, len(v.gws)), Events: slices.Clone(v.events)}
	for _, e := range v.gws {
		m.Gateways = append(m.Gateways, e.row())
	}
	slices.SortFunc(m.Gateways, func(a, b Row) int { return cmp.Compare(a.ID, b.ID) })
	if m.Events == nil {
		m.Events = []Event{}
	}
	return m
}

// Gateway returns a gateway's page, false if it is not known.
func (v *View) Gateway(id string) (Detail, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.gws[id]
	if e == nil {
		return Detail{}, false
	}
	d := Detail{V: Version, Gateway: e.row(), Identity: e.g.Identity, Session: e.g.Session,
		Samples: slices.Clone(e.samples), Events: slices.Clone(e.events), SMS: slices.Clone(e.sms)}
	for _, p := range []*[]Sample{&d.Samples} {
		if *p == nil {
			*p = []Sample{}
		}
	}
	for _, p := range []*[]Event{&d.Events, &d.SMS} {
		if *p == nil {
			*p = []Event{}
		}
	}
	return d, true
}

// flush takes what changed since the last call as an update, nil when
// nothing did.
func (v *View) flush() *Message {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.dirty) == 0 && len(v.removed) == 0 && len(v.fresh) == 0 {
		return nil
	}
	m := &Message{V: Version, Type: "update", Now: v.o.Clock.Now().Unix(), Gateways: make([]Row, 0, len(v.dirty)), Removed: v.removed, Events: v.fresh}
	for id := range v.dirty {
		m.Gateways = append(m.Gateways, v.gws[id].row())
	}
	slices.SortFunc(m.Gateways, func(a, b Row) int { return cmp.Compare(a.ID, b.ID) })
	if m.Events == nil {
		m.Events = []Event{}
	}
	clear(v.dirty)
	v.removed, v.fresh = nil, nil
	return m
}

// Run sends the batched updates to the subscribers every interval until
// ctx ends.
func (v *View) Run(ctx context.Context) error {
	t := time.NewTicker(v.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		m := v.flush()
		if m == nil {
			continue
		}
		b, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("fleetview: encode update: %w", err)
		}
		v.mu.Lock()
		for ch := range v.subs {
			select {
			case ch <- b:
			default:
				// A browser that cannot keep up is cut off; its
				// EventSource reconnects and starts from a snapshot.
				delete(v.subs, ch)
				close(ch)
			}
		}
		v.mu.Unlock()
	}
}

// subscribe returns the snapshot and a channel of later updates, taken
// under one lock so no update falls between them.
func (v *View) subscribe() ([]byte, chan []byte, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	// Changes not yet flushed are in the snapshot and will come again
	// in the next update: harmless, rows are replaced whole.
	b, err := json.Marshal(v.snapshot())
	if err != nil {
		return nil, nil, err
	}
	ch := make(chan []byte, subscriberBuf)
	v.subs[ch] = struct{}{}
	return b, ch, nil
}

func (v *View) unsubscribe(ch chan []byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.subs[ch]; ok {
		delete(v.subs, ch)
		close(ch)
	}
}
