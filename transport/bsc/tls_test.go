package bsc_test

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"cellagent/modem/clock/clocktest"
	"cellagent/transport/bsc"
	"cellagent/transport/bsc/bscemu"
	"cellagent/transport/bsc/bscemu/bscemutest"
	"cellagent/transport/secret/secrettest"
)

func startTLSSim(t *testing.T, tlsCfg *tls.Config) *bscemu.Server {
	t.Helper()
	return bscemutest.Start(t, bscemu.Config{Users: map[string]string{user: password}, SIMs: []bscemu.SIMConfig{{ICCID: iccid1}}}, tlsCfg)
}

func TestTLSWithTestCA(t *testing.T) {
	pki := secrettest.NewPKI(t)
	sim := startTLSSim(t, pki.ServerTLS(t))
	if !strings.HasPrefix(sim.URL(), "https://") {
		t.Fatalf("URL %s", sim.URL())
	}
	c := newClient(t, sim.URL(), nil, func(c *bsc.Config) { c.CAFile = pki.CAFile })
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
	pki := secrettest.NewPKI(t)
	srv := pki.ServerTLS(t)
	srv.ClientAuth = tls.RequireAndVerifyClientCert
	sim := startTLSSim(t, srv)
	c := newClient(t, sim.URL(), nil, func(c *bsc.Config) {
		c.CAFile, c.ClientCert, c.ClientKey = pki.CAFile, pki.ClientCert, pki.ClientKey
	})
	if _, err := c.DataQuota(context.Background(), iccid1); err != nil {
		t.Fatal(err)
	}
	c = newClient(t, sim.URL(), clocktest.New(time.Now(), 0), func(c *bsc.Config) { c.CAFile = pki.CAFile })
	if _, err := c.DataQuota(context.Background(), iccid1); err == nil {
		t.Fatal("server accepted a client without certificate")
	}
}
