package nettime

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"cellagent/modem/clock/clocktest"
)

// server serves TLS on loopback with a certificate valid for an hour
// either side of now, and returns its address and a pool trusting it.
func server(t *testing.T) (string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "broker.test"},
		DNSNames: []string{"broker.test"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
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
		&tls.Config{RootCAs: pool, ServerName: "broker.test", Time: now})
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
