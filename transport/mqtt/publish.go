package mqtt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// QueueItem is one queued record; Seq grows with every Push.
type QueueItem struct {
	Seq uint64
	Rec []byte
}

// Queue is the durable FIFO the publisher drains. Push returns once the
// record is on disk; Ack removes every item up to and including through.
// Adapt turns the agent store's queues into one.
type Queue interface {
	Push(rec []byte) error
	Peek(n int) ([]QueueItem, error)
	Ack(through uint64) (int, error)
}

// Item is any struct with QueueItem's fields, such as the agent store's
// own QueueItem; this package cannot name that type without depending on
// the agent.
type Item interface {
	~struct {
		Seq uint64
		Rec []byte
	}
}

// ItemQueue is a Queue whose items have another Item type; *store.Queue is
// an ItemQueue[store.QueueItem].
type ItemQueue[T Item] interface {
	Push(rec []byte) error
	Peek(n int) ([]T, error)
	Ack(through uint64) (int, error)
}

// Adapt wraps q as a Queue: mqtt.Adapt(st.Events()).
func Adapt[T Item](q ItemQueue[T]) Queue { return adapted[T]{q} }

type adapted[T Item] struct{ ItemQueue[T] }

func (a adapted[T]) Peek(n int) ([]QueueItem, error) {
	items, err := a.ItemQueue.Peek(n)
	out := make([]QueueItem, len(items))
	for i, it := range items {
		out[i] = QueueItem(it)
	}
	return out, err
}

// record is how a message waits in a queue. The header fields are added
// at publish time because they belong to the session that sends it.
type record struct {
	Kind Kind   `json:"k"`
	Run  uint64 `json:"r"`
	// Session is the one that was up when the record was queued, 0 if
	// none: a record sent in any other session is replayed.
	Session uint64          `json:"s,omitempty"`
	Body    json.RawMessage `json:"b"`
}

// QueueTelemetry stores t for publishing; TS defaults to now. Whether a
// sample is worth sending the agent decides before (its dead-bands).
func (c *Client) QueueTelemetry(t Telemetry) error {
	if t.TS == 0 {
		t.TS = c.clock.Now().Unix()
	}
	return c.enqueue(c.o.Telemetry, KindTelemetry, t)
}

// QueueEvent stores e for publishing in order; TS defaults to now.
func (c *Client) QueueEvent(e Event) error {
	if e.Type == "" {
		return errors.New("mqtt: queue event: empty type")
	}
	if e.TS == 0 {
		e.TS = c.clock.Now().Unix()
	}
	return c.enqueue(c.o.Ordered, KindEvent, e)
}

// QueueSMSIn stores an MT message for publishing in order. It returns nil
// only when the message is on disk, so it fits the inbox's Publisher
// contract: the inbox may mark the message published after it.
func (c *Client) QueueSMSIn(m SMSIn) error {
	if m.ID == "" {
		return errors.New("mqtt: queue sms/in: empty id")
	}
	return c.enqueue(c.o.Ordered, KindSMSIn, m)
}

// QueueSMSResult stores an MO outcome for publishing in order; TS
// defaults to now.
func (c *Client) QueueSMSResult(r SMSResult) error {
	if r.ID == "" || r.State == "" {
		return errors.New("mqtt: queue sms/out/result: empty id or state")
	}
	if r.TS == 0 {
		r.TS = c.clock.Now().Unix()
	}
	return c.enqueue(c.o.Ordered, KindSMSResult, r)
}

func (c *Client) enqueue(q Queue, k Kind, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("mqtt: queue %s: %w", k, err)
	}
	r := record{Kind: k, Run: c.run, Body: b}
	if s := c.current(); s != nil {
		r.Session = s.n
	}
	rec, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("mqtt: queue %s: %w", k, err)
	}
	if err := q.Push(rec); err != nil {
		return fmt.Errorf("mqtt: queue %s: %w", k, err)
	}
	c.notify()
	return nil
}

// errStore marks a failure of the local queue, which a new session would
// not cure.
var errStore = errors.New("local queue")

// serve drains the queues while s is up: the ordered queue first, since
// events and SMS matter more than a reading, then telemetry.
func (c *Client) serve(ctx context.Context, s *session) {
	queues := []struct {
		q   Queue
		qos byte
	}{{c.o.Ordered, 1}, {c.o.Telemetry, c.o.TelemetryQoS}}
	// A failing store (a full disk) is tried again after a pause that
	// doubles from a second up to the poll interval: soon enough that
	// results written once there is room go out within seconds, not a
	// poll later.
	stallWait := time.Second
	for {
		if c.identityChanged() {
			// A new birth of the same session: the retained status is
			// replaced, the session number stays.
			c.log.Info("mqtt: identity changed; publishing the birth again", "session", s.n)
			tok := s.publish(c.birth(s.n))[0]
			if err := waitToken(ctx, tok, s.lost, c.tr.timeout); err != nil {
				if !errors.Is(err, errSessionLost) && ctx.Err() == nil {
					c.log.Warn("mqtt: birth failed; dropping the session", "session", s.n, "err", err)
					s.abort(err)
				}
				return
			}
		}
		busy, stalled := false, false
		for _, q := range queues {
			n, err := c.drain(ctx, s, q.q, q.qos)
			switch {
			case err == nil:
			case errors.Is(err, errStore):
				// A queue that cannot be read or acknowledged would be
				// sent again at once, forever: wait for the next poll.
				c.log.Error("mqtt: queue failed; retrying at the next poll", "err", err)
				stalled = true
			case errors.Is(err, errSessionLost) || ctx.Err() != nil:
				return
			default:
				// A publish that fails on a live session (a timeout, a
				// refused packet) leaves the session suspect: drop it so
				// the will tells the truth and the next one starts clean.
				c.log.Warn("mqtt: publish failed; dropping the session", "session", s.n, "err", err)
				s.abort(err)
				return
			}
			if n > 0 || stalled {
				busy = n > 0 && !stalled
				break
			}
		}
		if busy {
			continue
		}
		kick, wait := c.kick, c.o.PollInterval
		if stalled {
			kick, wait = nil, min(stallWait, c.o.PollInterval)
			stallWait = min(2*stallWait, c.o.PollInterval)
		} else {
			stallWait = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-s.lost:
			return
		case <-kick:
		case <-c.clock.After(wait):
		}
	}
}

// drain publishes up to MaxInflight items of q and acknowledges the
// leading run of confirmed ones. Paho writes them in order on one
// connection and the broker forwards them in order, so in-flight items
// keep their order; after a failure the unconfirmed rest goes out again
// in the next round or session: at least once, never out of order.
func (c *Client) drain(ctx context.Context, s *session, q Queue, qos byte) (int, error) {
	items, err := q.Peek(c.o.MaxInflight)
	if err != nil {
		return 0, fmt.Errorf("%w: peek: %w", errStore, err)
	}
	if len(items) == 0 {
		return 0, nil
	}
	type inflight struct {
		seq uint64
		tok paho.Token // nil: undecodable record, skipped
	}
	pending := make([]inflight, 0, len(items))
	var msgs []outgoing
	var sent []int // index in pending of each of msgs
	for _, it := range items {
		topic, payload, retain, err := c.render(s, it)
		if err != nil {
			// Nothing can ever publish it; keeping it would block the
			// queue for good. It is logged whole, so not lost.
			c.stats.poisoned.Add(1)
			c.log.Error("mqtt: skipping undecodable queue record", "q", it.Seq, "err", err, "record", string(it.Rec))
			pending = append(pending, inflight{seq: it.Seq})
			continue
		}
		sent = append(sent, len(pending))
		pending = append(pending, inflight{seq: it.Seq})
		msgs = append(msgs, outgoing{topic: topic, qos: qos, retain: retain, payload: payload})
	}
	for i, tok := range s.publish(msgs...) {
		pending[sent[i]].tok = tok
	}
	limit := c.tr.keepAlive + c.tr.pingTimeout
	var through uint64
	done := 0
	for _, p := range pending {
		if p.tok != nil {
			if err = waitToken(ctx, p.tok, s.lost, limit); err != nil {
				break
			}
			c.stats.published.Add(1)
		}
		through, done = p.seq, done+1
	}
	if done > 0 {
		if _, aerr := q.Ack(through); aerr != nil && err == nil {
			// Not acknowledged means sent again: a duplicate, not a loss.
			err = fmt.Errorf("%w: ack through %d: %w", errStore, through, aerr)
		}
	}
	return done, err
}

// render turns a queued record into its topic and payload, adding the
// session's header. The body is spliced rather than decoded and encoded
// again: it is our own JSON object, checked here, and the header keys
// are not among its keys.
func (c *Client) render(s *session, it QueueItem) (topic string, payload []byte, retain bool, err error) {
	var r record
	if err := json.Unmarshal(it.Rec, &r); err != nil {
		return "", nil, false, err
	}
	switch r.Kind {
	case KindTelemetry:
		// Retained so a fleet view that starts later, or `fleet list`,
		// sees every gateway's last reading at once.
		retain = true
	case KindEvent, KindSMSIn, KindSMSResult:
	default:
		return "", nil, false, fmt.Errorf("unknown kind %q", r.Kind)
	}
	body := bytes.TrimSpace(r.Body)
	if len(body) < 2 || body[0] != '{' || !json.Valid(body) {
		return "", nil, false, errors.New("body is not a JSON object")
	}
	s.seq[r.Kind]++
	var b bytes.Buffer
	b.Grow(len(body) + 48)
	b.WriteString(`{"v":` + strconv.Itoa(Version(r.Kind)) + `,"seq":` + strconv.FormatUint(s.seq[r.Kind], 10) +
		`,"q":` + strconv.FormatUint(it.Seq, 10))
	if r.Run != c.run || r.Session != s.n {
		b.WriteString(`,"replayed":true`)
	}
	if inner := bytes.TrimSpace(body[1:]); len(inner) > 0 && inner[0] != '}' {
		b.WriteByte(',')
		b.Write(inner)
	} else {
		b.WriteByte('}')
	}
	return c.topics.Topic(r.Kind), b.Bytes(), retain, nil
}
