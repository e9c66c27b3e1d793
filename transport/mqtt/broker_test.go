package mqtt

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// The integration tests run a real mosquitto, as the house rules ask,
// on random loopback ports with a config generated in t.TempDir().

const mosquittoBin = "/usr/sbin/mosquitto"

type brokerConfig struct {
	pki      *testPKI          // TLS listeners when set
	users    map[string]string // password file entries; none: anonymous
	acl      string
	certPort bool // an extra TLS listener requiring a client certificate
}

type broker struct {
	t        testing.TB
	dir      string
	conf     string
	port     int // main listener: tcp, or TLS with a password when pki is set
	certPort int // TLS with a required client certificate
	scheme   string

	mu       sync.Mutex
	cmd      *exec.Cmd
	waitExit chan struct{}
	out      *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startBroker(t testing.TB, cfg brokerConfig) *broker {
	t.Helper()
	if _, err := os.Stat(mosquittoBin); err != nil {
		msg := fmt.Sprintf("mosquitto not installed at %s (apt-get install mosquitto mosquitto-clients, or make deps): %v", mosquittoBin, err)
		if os.Getenv("CI") != "" {
			// make test installs it; in CI a skip would hide every broker test.
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	b := &broker{t: t, dir: t.TempDir(), port: freePort(t), scheme: "tcp"}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	var c strings.Builder
	// mosquitto started as root drops to user "mosquitto", which cannot
	// read files in the test's private temp dir.
	fmt.Fprintf(&c, "user %s\nper_listener_settings false\n", u.Username)
	fmt.Fprintf(&c, "persistence true\npersistence_location %s/\n", b.dir)
	c.WriteString("log_dest stdout\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n")
	fmt.Fprintf(&c, "listener %d 127.0.0.1\n", b.port)
	if cfg.pki != nil {
		b.scheme = "tls"
		fmt.Fprintf(&c, "cafile %s\ncertfile %s\nkeyfile %s\n", cfg.pki.caFile, cfg.pki.serverCert, cfg.pki.serverKey)
		if cfg.certPort {
			b.certPort = freePort(t)
			fmt.Fprintf(&c, "listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n", b.certPort, cfg.pki.caFile, cfg.pki.serverCert, cfg.pki.serverKey)
			c.WriteString("require_certificate true\nuse_identity_as_username true\n")
		}
	}
	if len(cfg.users) == 0 {
		c.WriteString("allow_anonymous true\n")
	} else {
		pw := filepath.Join(b.dir, "passwd")
		first := true
		for name, pass := range cfg.users {
			args := []string{"-b"}
			if first {
				args = append(args, "-c") // create the file
			}
			args = append(args, pw, name, pass)
			if out, err := exec.Command("mosquitto_passwd", args...).CombinedOutput(); err != nil {
				t.Fatalf("mosquitto_passwd: %v: %s", err, out)
			}
			first = false
		}
		fmt.Fprintf(&c, "allow_anonymous false\npassword_file %s\n", pw)
	}
	if cfg.acl != "" {
		acl := filepath.Join(b.dir, "acl")
		if err := os.WriteFile(acl, []byte(cfg.acl), 0o600); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&c, "acl_file %s\n", acl)
	}
	b.conf = filepath.Join(b.dir, "mosquitto.conf")
	if err := os.WriteFile(b.conf, []byte(c.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	b.start()
	t.Cleanup(b.stop)
	return b
}

func (b *broker) url() string { return fmt.Sprintf("%s://127.0.0.1:%d", b.scheme, b.port) }

// start runs mosquitto and waits until it accepts TCP connections.
func (b *broker) start() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.out = &syncBuffer{}
	cmd := exec.Command(mosquittoBin, "-c", b.conf)
	cmd.Stdout, cmd.Stderr = b.out, b.out
	if err := cmd.Start(); err != nil {
		b.t.Fatalf("start mosquitto: %v", err)
	}
	b.cmd = cmd
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", b.port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			b.t.Fatalf("mosquitto exited at start:\n%s", b.out)
		default:
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("mosquitto did not listen on %d:\n%s", b.port, b.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.waitExit = exited
}

// stop ends mosquitto with SIGTERM, which also writes its persistence
// file, and waits for it.
func (b *broker) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.waitExit:
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.waitExit
	}
	b.cmd = nil
	if b.t.Failed() {
		b.t.Logf("mosquitto log:\n%s", b.out)
	}
}

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate with CN "dev1", written as PEM files.
type testPKI struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	dir := t.TempDir()
	p := &testPKI{
		caFile: filepath.Join(dir, "ca.pem"), serverCert: filepath.Join(dir, "server.pem"), serverKey: filepath.Join(dir, "server.key"),
		clientCert: filepath.Join(dir, "client.pem"), clientKey: filepath.Join(dir, "client.key"),
	}
	now := time.Now()
	caKey := genKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cellagent test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, p.caFile, "CERTIFICATE", caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, certFile, keyFile string, ips ...net.IP) {
		key := genKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, certFile, "CERTIFICATE", der)
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	}
	leaf(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, p.serverCert, p.serverKey, net.IPv4(127, 0, 0, 1))
	leaf(3, "dev1", x509.ExtKeyUsageClientAuth, p.clientCert, p.clientKey)
	return p
}

func genKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

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
	tls        *testPKI
}

func watch(t testing.TB, b *broker, o watchOpts, filters ...string) *watcher {
	t.Helper()
	w := &watcher{ch: make(chan msg, 1000)}
	po := paho.NewClientOptions().AddBroker(b.url()).SetClientID(o.id).SetCleanSession(o.clean).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(100 * time.Millisecond).
		SetMaxReconnectInterval(200 * time.Millisecond).SetKeepAlive(30 * time.Second).SetOrderMatters(true)
	if o.user != "" {
		po.SetUsername(o.user).SetPassword(o.pass)
	}
	if o.tls != nil {
		c := Conn{Broker: b.url(), CAFile: o.tls.caFile}
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
