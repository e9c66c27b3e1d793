package mqtt

import (
	"strings"
	"testing"
	"time"

	"cellagent/transport/mqtt/mqtttest"
	"cellagent/transport/secret/secrettest"
)

func TestConnConfig(t *testing.T) {
	pki := secrettest.NewPKI(t)
	tests := []struct {
		name    string
		conn    Conn
		wantErr string
		host    string
	}{
		{name: "tls default port", conn: Conn{Broker: "tls://broker.example"}, host: "broker.example:8883"},
		{name: "ssl", conn: Conn{Broker: "ssl://broker.example:9883", CAFile: pki.CAFile}, host: "broker.example:9883"},
		{name: "mutual tls", conn: Conn{Broker: "tls://10.0.0.1", CertFile: pki.ClientCert, KeyFile: pki.ClientKey}, host: "10.0.0.1:8883"},
		{name: "post-quantum", conn: Conn{Broker: "tls://broker.example", PostQuantumTLS: true}, host: "broker.example:8883"},
		{name: "tcp allowed", conn: Conn{Broker: "tcp://127.0.0.1", AllowPlaintext: true}, host: "127.0.0.1:1883"},
		{name: "tcp refused", conn: Conn{Broker: "tcp://127.0.0.1:1883"}, wantErr: "plain tcp"},
		{name: "ws refused", conn: Conn{Broker: "ws://broker.example"}, wantErr: "scheme"},
		{name: "tcp with CA", conn: Conn{Broker: "tcp://h", AllowPlaintext: true, CAFile: pki.CAFile}, wantErr: "TLS files"},
		{name: "credentials in URL", conn: Conn{Broker: "tls://u:p@broker.example"}, wantErr: "credentials"},
		{name: "path", conn: Conn{Broker: "tls://broker.example/mqtt"}, wantErr: "scheme://host"},
		{name: "no host", conn: Conn{Broker: "tls://:8883"}, wantErr: "no host"},
		{name: "missing CA", conn: Conn{Broker: "tls://h", CAFile: "/nonexistent"}, wantErr: "CA file"},
		{name: "CA not PEM", conn: Conn{Broker: "tls://h", CAFile: "/etc/hostname"}, wantErr: "no PEM"},
		{name: "cert without key", conn: Conn{Broker: "tls://h", CertFile: pki.ClientCert}, wantErr: "together"},
		{name: "keepalive too short", conn: Conn{Broker: "tls://h", KeepAlive: 500 * time.Millisecond}, wantErr: "KeepAlive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := tc.conn.build()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tr.url.Host != tc.host || tr.keepAlive != DefaultKeepAlive {
				t.Fatalf("host %s keepalive %s", tr.url.Host, tr.keepAlive)
			}
			if tls := tr.tls; tls != nil {
				if tls.ClientSessionCache == nil || tls.MinVersion == 0 {
					t.Fatal("TLS config without session cache or minimum version")
				}
				if classical := len(tls.CurvePreferences) == 2; classical == tc.conn.PostQuantumTLS {
					t.Fatalf("curves %v with PostQuantumTLS %v", tls.CurvePreferences, tc.conn.PostQuantumTLS)
				}
			}
		})
	}
}

// TLS with a test CA and a password file, and an ACL under which a
// gateway may publish only below its own id (its username).
func TestTLSPasswordAndACL(t *testing.T) {
	t.Parallel()
	acl := "user admin\ntopic readwrite #\n\npattern readwrite test/v1/%u/#\n"
	b := mqtttest.Start(t, mqtttest.Options{
		TLS: true, ACL: acl, CertListener: true,
		Users: map[string]string{"admin": "admin-pw", "dev1": "dev1-pw", "dev2": "dev2-pw"},
	})
	pki := b.PKI()
	w := watch(t, b, watchOpts{id: "ops", clean: true, user: "admin", pass: "admin-pw", tls: pki}, "test/v1/#")
	tlsAuth := func(user, pass string) func(*Options) {
		return func(o *Options) { o.CAFile, o.Username, o.Password = pki.CAFile, user, pass }
	}

	// The honest gateway: online and publishing over TLS.
	r1 := newRig(t, b, tlsAuth("dev1", "dev1-pw"))
	m := w.next(t, 5*time.Second, onTopic("test/v1/dev1/status"))
	if st := decode[Status](t, m.payload); st.State != Online {
		t.Fatalf("status = %+v", st)
	}
	waitFor(t, 5*time.Second, "online", func() bool { return r1.c.Stats().Connected })
	if err := r1.c.QueueEvent(Event{Type: "agent", Msg: "hello"}); err != nil {
		t.Fatal(err)
	}
	w.next(t, 5*time.Second, onTopic("test/v1/dev1/event"))

	// A reconnect resumes the TLS session instead of a full handshake.
	r1.dial.cut(false)
	waitFor(t, 5*time.Second, "resumed TLS session", func() bool {
		s := r1.c.Stats()
		return s.Connected && s.Session == 2 && s.TLSResumed >= 1
	})
	r1.stop(t)

	// dev1's credentials used to pose as dev2: the broker delivers none of
	// it (mosquitto acknowledges and drops, or refuses the will at
	// CONNECT), so nothing appears below dev2.
	forger := newRig(t, b, func(o *Options) {
		tlsAuth("dev1", "dev1-pw")(o)
		o.DeviceID, o.ClientID = "dev2", "forger"
	})
	time.Sleep(200 * time.Millisecond)
	if err := forger.c.QueueEvent(Event{Type: "agent", Msg: "forged"}); err != nil {
		t.Fatal(err)
	}
	w.quiet(t, time.Second, func(m msg) bool { return strings.HasPrefix(m.topic, "test/v1/dev2/") })
	t.Logf("forger: %+v", forger.c.Stats())
	forger.stop(t)

	// A wrong password never gets a session.
	wrong := newRig(t, b, tlsAuth("dev1", "guess"))
	waitFor(t, 5*time.Second, "refused connects", func() bool { return wrong.c.Stats().ConnectFailures >= 2 })
	if s := wrong.c.Stats(); s.Connects != 0 {
		t.Fatalf("wrong password connected: %+v", s)
	}
	wrong.stop(t)

	// Without the CA the broker's certificate is not trusted.
	untrusted := newRig(t, b, func(o *Options) { o.Username, o.Password = "dev1", "dev1-pw" })
	waitFor(t, 5*time.Second, "refused handshakes", func() bool { return untrusted.c.Stats().ConnectFailures >= 1 })
	untrusted.stop(t)

	// Mutual TLS: the client certificate's CN is the username.
	cert := newRig(t, b, func(o *Options) {
		o.Broker = b.CertURL()
		o.CAFile, o.CertFile, o.KeyFile = pki.CAFile, pki.ClientCert, pki.ClientKey
	})
	m = w.next(t, 5*time.Second, func(m msg) bool {
		return m.topic == "test/v1/dev1/status" && strings.Contains(m.payload, `"online"`)
	})
	waitFor(t, 5*time.Second, "online with a client certificate", func() bool { return cert.c.Stats().Connected })
}
