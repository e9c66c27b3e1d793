package nettime

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"

	"cellagent/modem/clock/clocktest"
	"cellagent/transport/secret/secrettest"
)

// server serves TLS on loopback with the test PKI's server certificate,
// valid for an hour either side of now, and returns its address and a
// pool of the PKI's CA.
func server(t *testing.T) (string, *x509.CertPool) {
	t.Helper()
	srv := secrettest.NewPKI(t).ServerTLS(t)
	pool := srv.ClientCAs // the one CA, which signed the server's certificate too
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	return ln.Addr().String(), pool
}

func handshake(addr string, pool *x509.CertPool, now func() time.Time) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Time: now})
	if err == nil {
		c.Close()
	}
	return err
}

// A gateway without an RTC before NTP: its clock says 1970. A real TLS
// handshake fails against the system clock, and succeeds against the
// network's time once the modem has reported it.
func TestTLSAgainstNetworkTime(t *testing.T) {
	addr, pool := server(t)
	epoch := time.Unix(0, 0)
	built := time.Now().Add(-24 * time.Hour)
	c := New(clocktest.New(epoch, 0), built)
	if c.Plausible() {
		t.Fatal("1970 taken as plausible")
	}
	if err := handshake(addr, pool, c.Now); err == nil || !strings.Contains(err.Error(), "certificate has expired or is not yet valid") {
		t.Fatalf("handshake in 1970 without network time: %v", err)
	}
	if s := c.Snapshot(); s != nil {
		t.Errorf("snapshot before any network time: %+v", s)
	}
	skew := c.Set(time.Now(), "qlts", time.Hour)
	if err := handshake(addr, pool, c.Now); err != nil {
		t.Fatalf("handshake with network time: %v", err)
	}
	if skew > -50*365*24*time.Hour {
		t.Errorf("skew %s", skew)
	}
	s := c.Snapshot()
	if s == nil || !s.UsingNetwork || s.SystemPlausible || s.Source != "qlts" || s.ZoneMinutes != 60 {
		t.Errorf("snapshot %+v", s)
	}
}

// A plausible system clock is used even when the network's differs: NTP
// is better than NITZ, which some networks send wrong.
func TestPlausibleSystemClockWins(t *testing.T) {
	sys := time.Now()
	c := New(clocktest.New(sys, 0), sys.Add(-time.Hour))
	c.Set(sys.Add(-time.Hour), "cclk", 0)
	if got := c.Now(); !got.Equal(sys) {
		t.Errorf("Now %v, want the system's %v", got, sys)
	}
	if s := c.Snapshot(); s.UsingNetwork || s.SkewSeconds < 3599 || s.SkewSeconds > 3600 {
		t.Errorf("snapshot %+v", s)
	}
	if !New(nil, time.Time{}).Plausible() {
		t.Error("without a build time the system clock must count as plausible")
	}
}
