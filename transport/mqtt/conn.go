package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"cellagent/transport/secret"
)

// Defaults for Conn.
const (
	// DefaultKeepAlive is 1200 s, the longest common cloud brokers
	// accept. Each PINGREQ/PINGRESP costs three packets, 204 B at the IP
	// level with TLS 1.3 and TCP timestamps: 57 KiB a day at 300 s, 14
	// KiB at 1200 s, measured in a network namespace
	// (scripts/bench-wire, BENCHMARKS.md); at 300 s the pings alone
	// broke the 50 KiB/day budget. The keep-alive must stay below the
	// carrier NAT's idle timeout, which varies by network: 6 h for
	// Twilio's Super SIM (twilio.com/docs/iot/supersim/super-sim-network-timeouts),
	// under 4.5 min on one French mobile network
	// (blog.wirelessmoves.com, 2020/09), and RFC 5382 asks for at least
	// 2 h 4 min. On a network that drops idle bindings sooner, lower
	// mqtt.keepalive below its timeout; the agent otherwise notices a
	// dropped binding only at the next ping and reconnects (2.7 KiB).
	// The last will comes up to 1.5 keep-alives late.
	DefaultKeepAlive = 1200 * time.Second
	// DefaultPingTimeout is generous because a cellular round trip can
	// take seconds while the radio wakes from its idle state; declaring
	// the link dead too early costs a full reconnect (~6.5 kB).
	DefaultPingTimeout = 30 * time.Second
	// DefaultConnectTimeout bounds TCP, TLS and CONNECT/CONNACK together.
	DefaultConnectTimeout = 30 * time.Second
)

// Conn says how to reach and authenticate to the broker; the device
// Client and the fleet reader share it.
type Conn struct {
	// Broker is tls://host[:8883] or ssl://…; tcp://host[:1883] only with
	// AllowPlaintext, because the password and SMS content would cross
	// the network in clear.
	Broker         string
	AllowPlaintext bool

	CAFile string // PEM bundle; empty trusts the system roots
	// CertFile and KeyFile are the client certificate for mutual TLS;
	// both or neither.
	CertFile, KeyFile string
	// Username and Password are passed in by the caller, which reads the
	// password from a file or a systemd credential; never logged.
	Username, Password string

	// PostQuantumTLS offers the hybrid X25519MLKEM768 key exchange, which
	// protects recorded traffic against a future quantum computer at
	// 1.2 kB per TLS handshake; off by default for the cellular budget.
	PostQuantumTLS bool

	KeepAlive      time.Duration // default DefaultKeepAlive
	PingTimeout    time.Duration // default DefaultPingTimeout
	ConnectTimeout time.Duration // default DefaultConnectTimeout

	// Dial opens the TCP connection; default the package's Dial. Tests use it to
	// cut a connection abruptly, a relay can count bytes through it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Dial opens the TCP connection to the broker when Conn.Dial is nil. It
// turns the kernel's TCP keep-alive off: Go's default dialer probes an
// idle connection after 15 s and every 15 s after that, each probe and
// its answer 104 B on the wire (IPv4 and TCP with timestamps), which on
// a link idle between 300 s MQTT keep-alives is about 550 KiB a day. The
// MQTT keep-alive already proves the link and holds carrier NAT
// bindings open.
func Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return (&net.Dialer{KeepAlive: -1}).DialContext(ctx, network, addr)
}

// transport is a validated Conn: the parsed URL, the TLS configuration
// (shared by every connection so its session cache resumes TLS sessions)
// and the wire counters.
type transport struct {
	url         *url.URL
	tls         *tls.Config
	user, pass  string
	keepAlive   time.Duration
	pingTimeout time.Duration
	timeout     time.Duration
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)

	sent, received atomic.Uint64 // bytes on the wire below TLS
	handshakes     atomic.Uint64
	resumed        atomic.Uint64 // TLS handshakes that resumed a session
}

// Validate checks what New and the fleet tools would refuse in c, without
// reading the TLS files it names (those are the machine's, checked where
// the agent runs), so a configuration check refuses what a start would.
func (c Conn) Validate() error {
	_, err := c.check(false)
	return err
}

func (c Conn) build() (*transport, error) { return c.check(true) }

// check validates c and, with loadTLS, reads its TLS files.
func (c Conn) check(loadTLS bool) (*transport, error) {
	u, err := url.Parse(c.Broker)
	if err != nil {
		return nil, fmt.Errorf("mqtt: config: broker: %w", err)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("mqtt: config: broker %q has no host", c.Broker)
	}
	if u.User != nil {
		return nil, errors.New("mqtt: config: broker URL must not carry credentials; set Username/Password")
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("mqtt: config: broker %q must be scheme://host[:port] only", c.Broker)
	}
	t := &transport{
		user: c.Username, pass: c.Password,
		keepAlive: c.KeepAlive, pingTimeout: c.PingTimeout, timeout: c.ConnectTimeout,
		dial: c.Dial,
	}
	port := "8883"
	switch u.Scheme {
	case "tls", "ssl":
		if !loadTLS {
			break
		}
		if t.tls, err = c.tlsConfig(u.Hostname()); err != nil {
			return nil, err
		}
	case "tcp":
		if !c.AllowPlaintext {
			return nil, fmt.Errorf("mqtt: config: broker %q is plain tcp; use tls:// or allow plaintext explicitly", c.Broker)
		}
		if c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" {
			return nil, errors.New("mqtt: config: TLS files given for a tcp:// broker")
		}
		port = "1883"
	default:
		return nil, fmt.Errorf("mqtt: config: broker %q: scheme must be tls, ssl or (explicitly allowed) tcp", c.Broker)
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), port)
	}
	u.Path = ""
	t.url = u
	if t.keepAlive == 0 {
		t.keepAlive = DefaultKeepAlive
	}
	if t.pingTimeout == 0 {
		t.pingTimeout = DefaultPingTimeout
	}
	if t.timeout == 0 {
		t.timeout = DefaultConnectTimeout
	}
	// MQTT carries the keep-alive in whole seconds; mosquitto refuses 0
	// by default and a sub-second value would round to it.
	if t.keepAlive < time.Second || t.pingTimeout < 0 || t.timeout < 0 {
		return nil, errors.New("mqtt: config: KeepAlive must be ≥ 1 s, timeouts positive")
	}
	if t.keepAlive > 65535*time.Second {
		return nil, errors.New("mqtt: config: KeepAlive must fit MQTT's 16-bit seconds field")
	}
	if t.dial == nil {
		t.dial = Dial
	}
	return t, nil
}

func (c Conn) tlsConfig(host string) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: host,
		// Resuming a session skips the certificate exchange, which is
		// most of the ~6.5 kB a full TLS+MQTT set-up costs on a link
		// where reconnects are the most expensive thing we do.
		ClientSessionCache: tls.NewLRUClientSessionCache(4),
	}
	if !c.PostQuantumTLS {
		// Go's default key share adds X25519MLKEM768, 1.2 kB more in
		// every ClientHello (measured against mosquitto: 1924 B sent for
		// a full set-up with it, 695 B without), and brokers whose
		// OpenSSL lacks ML-KEM answer with a HelloRetryRequest anyway.
		cfg.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP256}
	}
	if err := secret.LoadTLS(cfg, c.CAFile, c.CertFile, c.KeyFile); err != nil {
		return nil, fmt.Errorf("mqtt: config: %w", err)
	}
	return cfg, nil
}

// pahoOptions are the options every connection of ours shares. Paho's own
// reconnect and store are not used for the device (see Client); the
// caller sets those.
func (t *transport) pahoOptions(ctx context.Context, clientID string, onConn func(net.Conn)) *paho.ClientOptions {
	o := paho.NewClientOptions()
	o.AddBroker(t.url.String())
	o.SetClientID(clientID)
	o.SetProtocolVersion(4)
	o.SetKeepAlive(t.keepAlive)
	o.SetPingTimeout(t.pingTimeout)
	o.SetConnectTimeout(t.timeout)
	// A write blocked longer than a keep-alive means the link is gone;
	// without a limit a stuck write would hold the session forever.
	o.SetWriteTimeout(t.keepAlive)
	if t.user != "" {
		o.SetUsername(t.user)
		o.SetPassword(t.pass)
	}
	o.SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
		conn, err := t.open(ctx, u)
		if err == nil && onConn != nil {
			onConn(conn)
		}
		return conn, err
	})
	return o
}

// open dials and, for tls/ssl, shakes hands itself rather than through
// paho, to count wire bytes below TLS and to see whether the session was
// resumed.
func (t *transport) open(ctx context.Context, u *url.URL) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	raw, err := t.dial(ctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("mqtt: dial %s: %w", u.Host, err)
	}
	conn := &countingConn{Conn: raw, t: t}
	if t.tls == nil {
		return conn, nil
	}
	tc := tls.Client(conn, t.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("mqtt: TLS handshake with %s: %w", u.Host, err)
	}
	t.handshakes.Add(1)
	if tc.ConnectionState().DidResume {
		t.resumed.Add(1)
	}
	return tc, nil
}

// countingConn counts the bytes that cross the TCP socket, TLS included:
// the part of the cellular bill the agent controls.
type countingConn struct {
	net.Conn
	t *transport
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.t.received.Add(uint64(n))
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.t.sent.Add(uint64(n))
	return n, err
}

// waitToken waits for a paho token without outliving ctx or the session.
func waitToken(ctx context.Context, tok paho.Token, lost <-chan struct{}, limit time.Duration) error {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-lost:
		return errSessionLost
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return fmt.Errorf("no answer from the broker within %s", limit)
	}
}

var errSessionLost = errors.New("connection lost")

// outgoing is one PUBLISH for session.publish.
type outgoing struct {
	topic   string
	qos     byte
	retain  bool
	payload []byte
}

// publish hands msgs to paho in order, on a goroutine of its own, and
// returns a token for each. Paho's Publish blocks until its writer takes
// the packet: on a link that stalled without closing, for up to the write
// timeout (a keep-alive), and once the connection is lost nothing takes
// packets at all, so it waits out that timeout whatever happens. Called
// directly, it would hold the publisher, a shutdown or paho's own
// delivery goroutine (a command refusal) for minutes; through here the
// caller waits with waitToken and gives up on a lost session or a
// cancelled context. The goroutine ends once every token is done or the
// session is lost; Disconnect fails whatever paho still holds.
func (s *session) publish(msgs ...outgoing) []paho.Token {
	out := make([]paho.Token, len(msgs))
	toks := make([]*handedOff, len(msgs))
	for i := range toks {
		toks[i] = &handedOff{done: make(chan struct{})}
		out[i] = toks[i]
	}
	go func() {
		inner := make([]paho.Token, len(msgs))
		for i, m := range msgs {
			inner[i] = s.cli.Publish(m.topic, m.qos, m.retain, m.payload)
		}
		for i, t := range inner {
			select {
			case <-t.Done():
				toks[i].err = t.Error()
			case <-s.lost:
				toks[i].err = errSessionLost
			}
			close(toks[i].done)
		}
	}()
	return out
}

// handedOff is the token of a PUBLISH handed to paho by session.publish.
type handedOff struct {
	done chan struct{}
	err  error // set before done closes
}

func (t *handedOff) Wait() bool            { <-t.done; return true }
func (t *handedOff) Done() <-chan struct{} { return t.done }

func (t *handedOff) WaitTimeout(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-t.done:
		return true
	case <-timer.C:
		return false
	}
}

func (t *handedOff) Error() error {
	select {
	case <-t.done:
		return t.err
	default:
		return nil
	}
}
