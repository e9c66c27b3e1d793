package mqtt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"cellagent/modem/clock"
)

// Options configure a device Client.
type Options struct {
	Conn
	Prefix   string // default DefaultPrefix
	DeviceID string // one topic level; the daemon defaults it to the ICCID
	// ClientID must be stable across restarts so the broker keeps the
	// session (clean-session false) and its queued commands; default
	// DeviceID, which lets a broker ACL pattern use %c as well as %u.
	ClientID string
	// Identity is for the birth message; SetIdentity changes it.
	Identity Identity

	// Ordered holds events, SMS in and SMS results: published with QoS 1
	// in queue order, acknowledged in the queue only after PUBACK. It
	// should refuse new items when full (nothing may be lost silently).
	Ordered Queue
	// Telemetry holds report-by-exception samples; it should drop the
	// oldest when full and count the drops.
	Telemetry    Queue
	TelemetryQoS byte // 0 (default, cheapest) or 1
	// MaxInflight is how many queued messages are in flight at once
	// (default 8): one PUBACK round trip per message would take minutes
	// to drain a long outage over a cellular link.
	MaxInflight int

	// NextSession returns the next birth/death session number, stored
	// durably by the daemon so it grows across restarts. Default: an
	// in-memory counter from 1.
	NextSession func() (uint64, error)

	// MinBackoff and MaxBackoff bound the delay between connection
	// attempts (defaults 5 s and 5 min); it doubles per failure, with
	// jitter so a fleet does not reconnect in step after a broker outage.
	MinBackoff, MaxBackoff time.Duration
	// PollInterval is how often the queues are re-read when no Queue*
	// method announced new items, e.g. items pushed to the store directly,
	// or after a queue failure (default 30 s).
	PollInterval time.Duration

	Commands Commands

	// OnChange, when set, is called after a session comes up or goes
	// down, so the daemon can rewrite its status file; it must not block.
	OnChange func()

	Logger *slog.Logger
	// Clock stamps payloads and drives back-off, command expiry and rate
	// limits; network deadlines use real time, as paho does.
	Clock clock.Clock
}

// stableSession is how long a session must last for the next connection
// failure to start the back-off over.
const stableSession = time.Minute

// Client is the device side: it keeps one MQTT session up at a time,
// announces itself, drains the durable queues and answers commands. Paho
// runs one connection per session with its auto-reconnect and connect
// retry off: its in-memory store would lose what it holds on restart and
// drops QoS 0 while offline, and its options fix the last will for good,
// while ours must carry each session's number.
type Client struct {
	o      Options
	topics Topics
	tr     *transport
	log    *slog.Logger
	clock  clock.Clock
	// run tells this process's queue records from a previous run's, so
	// items that survived a restart count as replayed even when the
	// session counter is not persisted.
	run     uint64
	kick    chan struct{}
	redial  chan struct{} // Reconnect: skip the back-off wait
	cmds    *dispatcher
	running atomic.Bool
	synced  atomic.Bool // the broker's session holds this run's command subscriptions

	mu    sync.Mutex
	sess  *session // nil while offline
	next  uint64   // default session counter
	ident Identity
	// identNew: ident changed since the session's birth, which serve
	// publishes again.
	identNew bool

	stats struct {
		connects, connectFailures, published, poisoned atomic.Uint64
	}
}

// session is one MQTT connection.
type session struct {
	n       uint64
	cli     paho.Client
	lost    chan struct{}
	lostErr error
	once    sync.Once
	connMu  sync.Mutex
	conn    net.Conn        // to abort it without a DISCONNECT
	seq     map[Kind]uint64 // per-topic sequence; publisher goroutine only
	started time.Time       // for the back-off reset
}

func (s *session) lose(err error) {
	s.once.Do(func() {
		s.lostErr = err
		close(s.lost)
	})
}

// abort drops the connection without DISCONNECT, so the broker publishes
// our will: used when the session is unusable. It marks the session lost
// itself because paho takes a locally closed connection for its own
// doing and reports no loss.
func (s *session) abort(err error) {
	s.connMu.Lock()
	if s.conn != nil {
		s.conn.Close()
	}
	s.connMu.Unlock()
	s.lose(err)
}

// New validates o. No network traffic happens before Run.
func New(o Options) (*Client, error) {
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
	if err := ValidateLevel(o.DeviceID); err != nil {
		return nil, fmt.Errorf("mqtt: config: device id %q: %w", o.DeviceID, err)
	}
	if o.ClientID == "" {
		o.ClientID = o.DeviceID
	}
	if o.Ordered == nil || o.Telemetry == nil {
		return nil, errors.New("mqtt: config: Ordered and Telemetry queues are required")
	}
	if o.TelemetryQoS > 1 {
		return nil, errors.New("mqtt: config: TelemetryQoS must be 0 or 1")
	}
	if o.MaxInflight <= 0 {
		o.MaxInflight = 8
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 5 * time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(5*time.Minute, o.MinBackoff)
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clock.System
	}
	c := &Client{
		o:      o,
		topics: Topics{Prefix: o.Prefix, Device: o.DeviceID},
		tr:     tr,
		log:    o.Logger.With("device", o.DeviceID),
		clock:  o.Clock,
		run:    rand.Uint64(),
		kick:   make(chan struct{}, 1),
		ident:  o.Identity,
		redial: make(chan struct{}, 1),
	}
	if c.cmds, err = newDispatcher(o.Commands, c); err != nil {
		return nil, err
	}
	return c, nil
}

// Stats are counters for the agent's health telemetry and for tests.
type Stats struct {
	Connected       bool   `json:"connected"`
	Session         uint64 `json:"session"`  // current, 0 while offline
	Connects        uint64 `json:"connects"` // sessions established
	ConnectFailures uint64 `json:"connect_failures"`
	TLSHandshakes   uint64 `json:"tls_handshakes"`
	TLSResumed      uint64 `json:"tls_resumed"`    // handshakes that resumed a TLS session
	Published       uint64 `json:"published"`      // queued messages confirmed
	Poisoned        uint64 `json:"poisoned"`       // queued records that could not be decoded, skipped
	BytesSent       uint64 `json:"bytes_sent"`     // on the wire (TCP payload, TLS included)
	BytesReceived   uint64 `json:"bytes_received"` // likewise
	CommandsDone    uint64 `json:"commands_done"`
	CommandsRefused uint64 `json:"commands_refused"` // invalid, expired, rate-limited or busy
}

// Stats returns a snapshot of the counters.
func (c *Client) Stats() Stats {
	st := Stats{
		Connects:        c.stats.connects.Load(),
		ConnectFailures: c.stats.connectFailures.Load(),
		TLSHandshakes:   c.tr.handshakes.Load(),
		TLSResumed:      c.tr.resumed.Load(),
		Published:       c.stats.published.Load(),
		Poisoned:        c.stats.poisoned.Load(),
		BytesSent:       c.tr.sent.Load(),
		BytesReceived:   c.tr.received.Load(),
		CommandsDone:    c.cmds.done.Load(),
		CommandsRefused: c.cmds.refused.Load(),
	}
	if s := c.current(); s != nil {
		st.Connected, st.Session = true, s.n
	}
	return st
}

func (c *Client) current() *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

func (c *Client) setCurrent(s *session) {
	c.mu.Lock()
	c.sess = s
	c.mu.Unlock()
	if c.o.OnChange != nil {
		c.o.OnChange()
	}
}

// SetIdentity changes the identity the birth carries. The identity is
// known only once the modem answers, often after the first birth, and a
// SIM or modem swap changes it: a change is published at once as a new
// retained birth of the current session.
func (c *Client) SetIdentity(id Identity) {
	c.mu.Lock()
	changed := id != c.ident
	if changed {
		c.ident, c.identNew = id, true
	}
	c.mu.Unlock()
	if changed {
		c.notify()
	}
}

// takeIdentity returns the identity for a birth, which then is current.
func (c *Client) takeIdentity() Identity {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.identNew = false
	return c.ident
}

// identityChanged says whether the identity changed since the last birth.
func (c *Client) identityChanged() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.identNew
}

// Run keeps a session up until ctx ends, then publishes a clean offline
// status and disconnects. It returns nil after that shutdown, or an error
// if it was already running.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("mqtt: client already running")
	}
	defer c.running.Store(false)
	var wg sync.WaitGroup
	wg.Go(func() { c.cmds.work(ctx) })
	defer wg.Wait()

	attempt := 0 // failed sessions since the back-off last started over
	for {
		s, err := c.connect(ctx)
		if err == nil {
			c.serve(ctx, s)
			c.setCurrent(nil)
			if ctx.Err() != nil {
				c.shutdown(s)
				return nil
			}
			s.cli.Disconnect(0)
			// A session that lived a while was a success: start the
			// back-off over. One that dies at once is a flap, and every
			// flap costs a full set-up on the cellular bill.
			if c.clock.Now().Sub(s.started) >= stableSession {
				attempt = 0
			}
		} else if ctx.Err() != nil {
			return nil
		}
		attempt++
		// Equal jitter: wait between half and all of the delay.
		delay := clock.Backoff(c.o.MinBackoff, c.o.MaxBackoff, attempt)
		wait := delay/2 + rand.N(delay/2+1)
		if err == nil {
			c.log.Warn("mqtt: connection lost", "session", s.n, "err", s.lostErr, "retry_in", wait)
		} else {
			c.stats.connectFailures.Add(1)
			c.log.Warn("mqtt: connect failed", "err", err, "retry_in", wait)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.clock.After(wait):
		case <-c.redial:
			// Asked to try now: the back-off starts over.
			attempt = 0
		}
	}
}

// Reconnect drops the connection, if one is up, and cuts short the wait
// before the next attempt: for an operator who knows the way to the
// broker is back before the back-off does. It reports whether a session
// was up.
func (c *Client) Reconnect() bool {
	select {
	case c.redial <- struct{}{}:
	default:
	}
	s := c.current()
	if s != nil {
		s.abort(errors.New("reconnect requested"))
	}
	return s != nil
}

func (c *Client) nextSession() (uint64, error) {
	if c.o.NextSession != nil {
		n, err := c.o.NextSession()
		if err != nil {
			return 0, fmt.Errorf("mqtt: next session number: %w", err)
		}
		return n, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.next++
	return c.next, nil
}

// statusPayload is the offline status of session n (a will unless
// clean).
func (c *Client) statusPayload(n uint64, clean bool) []byte {
	st := Status{V: SchemaVersion, State: Offline, Session: n, Clean: clean}
	if clean {
		st.TS = c.clock.Now().Unix()
	}
	b, _ := json.Marshal(st) // plain strings and numbers: cannot fail
	return b
}

// birth is session n's online status, with the identity as it is now.
func (c *Client) birth(n uint64) outgoing {
	id := c.takeIdentity()
	st := Status{V: SchemaVersion, State: Online, Session: n, TS: c.clock.Now().Unix(),
		KeepAlive: int(c.tr.keepAlive / time.Second), Identity: id}
	b, _ := json.Marshal(st) // plain strings and numbers: cannot fail
	return outgoing{c.topics.Topic(KindStatus), 1, true, b}
}

// connect opens session n: CONNECT with the session's will, the command
// subscriptions, then the birth.
func (c *Client) connect(ctx context.Context) (*session, error) {
	n, err := c.nextSession()
	if err != nil {
		return nil, err
	}
	s := &session{n: n, lost: make(chan struct{}), seq: map[Kind]uint64{}}
	o := c.tr.pahoOptions(ctx, c.o.ClientID, func(conn net.Conn) {
		s.connMu.Lock()
		s.conn = conn
		s.connMu.Unlock()
	})
	o.SetCleanSession(false)
	o.SetAutoReconnect(false)
	o.SetConnectRetry(false)
	o.SetResumeSubs(false)
	o.SetBinaryWill(c.topics.Topic(KindStatus), c.statusPayload(n, false), 1, true)
	o.SetConnectionLostHandler(func(_ paho.Client, err error) { s.lose(err) })
	s.cli = paho.NewClient(o)
	// Routes go in before CONNECT: with a persistent session the broker
	// may deliver queued commands right after CONNACK.
	for _, name := range c.cmds.enabled() {
		s.cli.AddRoute(c.topics.Command(name), func(_ paho.Client, m paho.Message) {
			c.cmds.receive(s, m.Topic(), m.Payload(), m.Retained())
		})
	}
	limit := c.tr.timeout
	tok := s.cli.Connect()
	if err := waitToken(ctx, tok, s.lost, limit); err != nil {
		s.abort(err)
		return nil, fmt.Errorf("mqtt: connect %s: %w", c.tr.url.Redacted(), err)
	}
	present := tok.(*paho.ConnectToken).SessionPresent()
	s.started = c.clock.Now()
	fail := func(what string, err error) (*session, error) {
		s.abort(err)
		s.cli.Disconnect(0)
		return nil, fmt.Errorf("mqtt: %s: %w", what, err)
	}
	// Subscribed (SUBACK in hand) before the birth: a fleet tool sends a
	// command as soon as it sees "online", and a broker drops a message
	// for a topic the session has not subscribed yet, even at QoS 1.
	if err := c.syncCommands(ctx, s, present); err != nil {
		return fail("command subscriptions", err)
	}
	birth := s.publish(c.birth(n))[0]
	if err := waitToken(ctx, birth, s.lost, limit); err != nil {
		return fail("birth", err)
	}
	c.stats.connects.Add(1)
	c.setCurrent(s)
	c.log.Info("mqtt: online", "session", n, "broker", c.tr.url.Redacted(), "session_present", present,
		"tls_resumed", c.tr.resumed.Load())
	return s, nil
}

// syncCommands makes the broker's session subscribe exactly the enabled
// commands. A session the broker kept already has them once this run has
// set them up, so a reconnect costs no SUBSCRIBE; on the first connect of
// a run a kept session may hold subscriptions of a run that enabled more,
// which would keep bringing their commands over the paid link.
func (c *Client) syncCommands(ctx context.Context, s *session, present bool) error {
	if present && c.synced.Load() {
		return nil
	}
	enabled := c.cmds.enabled()
	if len(enabled) > 0 {
		filters := map[string]byte{}
		for _, name := range enabled {
			filters[c.topics.Command(name)] = 1
		}
		if err := waitToken(ctx, s.cli.SubscribeMultiple(filters, nil), s.lost, c.tr.timeout); err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
	}
	if present {
		var stale []string
		for _, name := range commandNames {
			if !slices.Contains(enabled, name) {
				stale = append(stale, c.topics.Command(name))
			}
		}
		if len(stale) > 0 {
			if err := waitToken(ctx, s.cli.Unsubscribe(stale...), s.lost, c.tr.timeout); err != nil {
				return fmt.Errorf("unsubscribe: %w", err)
			}
		}
	}
	c.synced.Store(true)
	return nil
}

// shutdown announces a clean offline (a DISCONNECT suppresses the will)
// and closes the session.
func (c *Client) shutdown(s *session) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tok := s.publish(outgoing{c.topics.Topic(KindStatus), 1, true, c.statusPayload(s.n, true)})[0]
	if err := waitToken(ctx, tok, s.lost, 5*time.Second); err != nil {
		c.log.Warn("mqtt: offline status not confirmed; the will covers it", "err", err)
		s.abort(err)
	}
	s.cli.Disconnect(250)
	c.log.Info("mqtt: offline", "session", s.n)
}

// notify wakes the publisher after a push.
func (c *Client) notify() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}
