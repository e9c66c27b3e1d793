package bsc_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cellagent/modem/clock/clocktest"
	"cellagent/transport/bsc"
	"cellagent/transport/bsc/bscemu"
	"cellagent/transport/bsc/bscemu/bscemutest"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, all generated per test run.
type testPKI struct {
	caFile, clientCert, clientKey string
	pool                          *x509.CertPool
	server                        tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cellagent test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, usage x509.ExtKeyUsage, certPath, keyPath string) tls.Certificate {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "leaf"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		if certPath != "" {
			keyDER, _ := x509.MarshalECPrivateKey(key)
			writePEM(t, certPath, "CERTIFICATE", der)
			writePEM(t, keyPath, "EC PRIVATE KEY", keyDER)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	p := testPKI{
		caFile:     filepath.Join(dir, "ca.pem"),
		clientCert: filepath.Join(dir, "client.pem"),
		clientKey:  filepath.Join(dir, "client.key"),
		pool:       x509.NewCertPool(),
	}
	writePEM(t, p.caFile, "CERTIFICATE", caDER)
	p.pool.AddCert(ca)
	p.server = leaf(2, x509.ExtKeyUsageServerAuth, "", "")
	leaf(3, x509.ExtKeyUsageClientAuth, p.clientCert, p.clientKey)
	return p
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func startTLSSim(t *testing.T, tlsCfg *tls.Config) *bscemu.Server {
	t.Helper()
	return bscemutest.Start(t, bscemu.Config{Users: map[string]string{user: password}, SIMs: []bscemu.SIMConfig{{ICCID: iccid1}}}, tlsCfg)
}

func TestTLSWithTestCA(t *testing.T) {
	pki := newTestPKI(t)
	sim := startTLSSim(t, &tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12})
	if !strings.HasPrefix(sim.URL(), "https://") {
		t.Fatalf("URL %s", sim.URL())
	}
	c := newClient(t, sim.URL(), nil, func(c *bsc.Config) { c.CAFile = pki.caFile })
	if _, err := c.GetSIM(context.Background(), iccid1); err != nil {
		t.Fatal(err)
	}
	// Without the CA the server is not trusted.
	c = newClient(t, sim.URL(), clocktest.New(time.Now(), 0), nil)
	if _, err := c.GetSIM(context.Background(), iccid1); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted server accepted: %v", err)
	}
}

func TestMutualTLS(t *testing.T) {
	pki := newTestPKI(t)
	sim := startTLSSim(t, &tls.Config{
		Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pki.pool,
	})
	c := newClient(t, sim.URL(), nil, func(c *bsc.Config) {
		c.CAFile, c.ClientCert, c.ClientKey = pki.caFile, pki.clientCert, pki.clientKey
	})
	if _, err := c.DataQuota(context.Background(), iccid1); err != nil {
		t.Fatal(err)
	}
	c = newClient(t, sim.URL(), clocktest.New(time.Now(), 0), func(c *bsc.Config) { c.CAFile = pki.caFile })
	if _, err := c.DataQuota(context.Background(), iccid1); err == nil {
		t.Fatal("server accepted a client without certificate")
	}
}
