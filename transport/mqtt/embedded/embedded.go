// Package embedded runs an in-process MQTT broker (github.com/mochi-mqtt/server/v2)
// so the bench and the tests work on a machine without mosquitto. It has no
// TLS, so it listens on loopback only; given a user (WithUser) it admits
// only that user, else every local client.
package embedded

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// connectTimeout bounds how long an accepted connection may take to send
// CONNECT. mochi sets no deadline before CONNECT, and its Close waits for
// every accepted connection, so one silent peer would hang Close for good.
// After CONNECT, mochi replaces the deadline with 1.5 × the keep-alive.
const connectTimeout = 10 * time.Second

// Broker is a running embedded broker.
type Broker struct {
	srv   *mochi.Server
	ln    *listener
	url   string
	stop  func() bool // detaches the ctx watcher
	once  sync.Once
	close error
}

// CheckAddr says whether Start would listen on addr, without listening.
func CheckAddr(addr string) error {
	_, _, err := listenAddr(addr)
	return err
}

func listenAddr(addr string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(addr)
	if err != nil {
		return "", "", fmt.Errorf("embedded broker: address %q: %w", addr, err)
	}
	if host == "localhost" {
		// Pinned rather than resolved: a resolver may put a routable
		// address first, or pick ::1 on one run and 127.0.0.1 on the next.
		host = "127.0.0.1"
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return "", "", fmt.Errorf("embedded broker: address %q is not loopback: the broker has no authentication or TLS, so it only listens on 127.0.0.0/8 or ::1", addr)
	}
	return host, port, nil
}

// Option configures Start.
type Option func(*options)

type options struct{ user, password []byte }

// WithUser admits only clients that connect with this user name and
// password: on a gateway where commands can send SMS, being a local user
// must not be enough to send them.
func WithUser(name, password string) Option {
	return func(o *options) { o.user, o.password = []byte(name), []byte(password) }
}

// Start runs an in-process MQTT broker on addr (e.g. "127.0.0.1:0"), for the
// bench and tests only. addr must name a loopback address ("localhost" means
// 127.0.0.1). The broker also closes when ctx ends. A nil log discards.
func Start(ctx context.Context, addr string, log *slog.Logger, opts ...Option) (*Broker, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	host, port, err := listenAddr(addr)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = slog.New(debugHandler{log.Handler()}).With("component", "mqtt-broker")

	nl, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	caps := mochi.NewDefaultServerCapabilities()
	// mochi's default deletes every retained message 24 h after it was
	// published, whatever its own expiry. A gateway's birth is published
	// once per connection, so a day-long bench run would lose it from
	// `fleet list`; 0 turns the enforcement off, as in mosquitto.
	caps.MaximumMessageExpiryInterval = 0
	srv := mochi.New(&mochi.Options{
		Capabilities: caps,
		Logger:       log,
		// $SYS is republished (and retained) every second by default;
		// nothing here reads it, so keep the bench quiet.
		SysTopicResendInterval: 60,
	})
	ln := &listener{ln: nl, conns: map[net.Conn]struct{}{}, served: make(chan struct{})}
	// Without a user, loopback is the guard: anyone who can reach the
	// port is a local user.
	var gate mochi.Hook = new(auth.AllowHook)
	if o.user != nil {
		gate = &userHook{user: o.user, password: o.password}
	}
	if err := srv.AddHook(gate, nil); err != nil {
		nl.Close()
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	if err := srv.AddListener(ln); err != nil {
		nl.Close()
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	// Serve fails only before it starts any goroutine (loading stores or
	// listeners from config, neither used here).
	if err := srv.Serve(); err != nil {
		nl.Close()
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	b := &Broker{srv: srv, ln: ln, url: "tcp://" + nl.Addr().String()}
	b.stop = context.AfterFunc(ctx, func() { _ = b.Close() })
	log.Debug("embedded broker listening", "url", b.url)
	return b, nil
}

// URL is the broker's address for clients, "tcp://127.0.0.1:PORT".
func (b *Broker) URL() string { return b.url }

// Close stops the listener, disconnects every client (publishing their
// wills, as for any lost connection) and returns once the broker's
// goroutines are done or on their way out. It is safe to call more than
// once; mochi's own Close panics on a second call.
func (b *Broker) Close() error {
	b.once.Do(func() {
		b.stop()
		b.close = b.srv.Close()
	})
	return b.close
}

// listener is mochi's TCP listener plus what Close needs: it owns the
// accepted connections, so Close can cut those that never sent CONNECT
// (mochi does not know them yet), and it waits for every goroutine it
// started, where mochi's listener leaves them running.
type listener struct {
	ln     net.Listener
	log    *slog.Logger
	served chan struct{}
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
}

func (l *listener) ID() string       { return "embedded" }
func (l *listener) Address() string  { return l.ln.Addr().String() }
func (l *listener) Protocol() string { return "tcp" }

// Init only takes the logger: Start listened already, to refuse a bad
// address before building the server.
func (l *listener) Init(log *slog.Logger) error {
	l.log = log
	return nil
}

func (l *listener) Serve(establish listeners.EstablishFn) {
	defer close(l.served)
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				l.log.Error("embedded broker stopped accepting", "error", err)
			}
			return
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			c.Close()
			return
		}
		l.conns[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		_ = c.SetDeadline(time.Now().Add(connectTimeout))
		go func() {
			defer l.wg.Done()
			err := establish(l.ID(), c) // returns when the client is gone
			l.mu.Lock()
			delete(l.conns, c)
			l.mu.Unlock()
			c.Close()
			l.log.Debug("client connection ended", "remote", c.RemoteAddr().String(), "error", err)
		}()
	}
}

// Close is called by mochi's Server.Close, after which mochi waits for
// the clients it counted.
func (l *listener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.mu.Unlock()
	closeClients(l.ID())
	l.ln.Close()
	<-l.served
	l.mu.Lock()
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	// mochi counts a client in its WaitGroup from inside the goroutine
	// Serve started, so its Wait right after this may race with that Add
	// (the race detector says so). Once every such goroutine is done,
	// nothing can Add any more.
	l.wg.Wait()
}

// debugHandler logs mochi's records at debug: its info and warnings
// (listener attached, every client that drops its TCP connection) are
// routine for a bench broker. Errors stay errors.
type debugHandler struct{ slog.Handler }

func (h debugHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.Handler.Enabled(ctx, demote(l))
}

func (h debugHandler) Handle(ctx context.Context, r slog.Record) error {
	r.Level = demote(r.Level)
	return h.Handler.Handle(ctx, r)
}

func (h debugHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return debugHandler{h.Handler.WithAttrs(as)}
}

func (h debugHandler) WithGroup(name string) slog.Handler {
	return debugHandler{h.Handler.WithGroup(name)}
}

func demote(l slog.Level) slog.Level {
	if l < slog.LevelError {
		return slog.LevelDebug
	}
	return l
}

// userHook admits the one configured user, comparing in constant time.
type userHook struct {
	mochi.HookBase
	user, password []byte
}

func (h *userHook) ID() string { return "cellagent-user" }

func (h *userHook) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}

func (h *userHook) OnConnectAuthenticate(_ *mochi.Client, pk packets.Packet) bool {
	userOK := subtle.ConstantTimeCompare(pk.Connect.Username, h.user) == 1
	passOK := subtle.ConstantTimeCompare(pk.Connect.Password, h.password) == 1
	return userOK && passOK
}

// OnACLCheck allows everything to the client OnConnectAuthenticate let in.
func (h *userHook) OnACLCheck(*mochi.Client, string, bool) bool { return true }
