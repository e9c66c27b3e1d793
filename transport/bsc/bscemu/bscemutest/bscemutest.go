// Package bscemutest starts the operator-platform simulator for tests: the
// one helper the packages above transport/bsc/bscemu share, so each test
// says only what is special about its platform.
package bscemutest

import (
	"crypto/tls"
	"testing"

	"cellagent/transport/bsc/bscemu"
)

// Start runs a simulated platform with cfg on a free loopback port, over
// TLS when tlsCfg is set; it is closed when the test ends.
func Start(tb testing.TB, cfg bscemu.Config, tlsCfg *tls.Config) *bscemu.Server {
	tb.Helper()
	s, err := bscemu.New(cfg)
	if err != nil {
		tb.Fatalf("building the platform simulator: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	if err := s.Start("127.0.0.1:0", tlsCfg); err != nil {
		tb.Fatalf("starting the platform simulator: %v", err)
	}
	return s
}
