package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A platform that answers slowly: the CLI ends at its overall deadline
// (--timeout), not after every retry of every request timed out.
func TestBSCOverallTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	cfg := bscConfig(t, srv.URL, "secret", `timeout = "3s"`, `iccid = "89882280666012345678"`)
	for _, sub := range []string{"quota", "reset"} {
		start := time.Now()
		o := cli(t, "", "bsc", sub, "--config", cfg, "--timeout", "1s")
		took := time.Since(start)
		if o.code != 1 || !strings.Contains(o.stderr, "within --timeout 1s") {
			t.Errorf("bsc %s: code %d stderr %q", sub, o.code, o.stderr)
		}
		if took > 2900*time.Millisecond {
			t.Errorf("bsc %s took %s with --timeout 1s: not ended by the overall deadline", sub, took.Round(time.Millisecond))
		}
	}
	if o := cli(t, "", "bsc", "quota", "--config", cfg, "--timeout", "-1s"); o.code != 2 {
		t.Errorf("--timeout -1s: code %d stderr %q", o.code, o.stderr)
	}
}

func TestATNegativeTimeoutRefused(t *testing.T) {
	m := startSim(t)
	o := cli(t, "", "at", "--port", m.PTY(), "--timeout", "-1s", "AT")
	if o.code != 2 || !strings.Contains(o.stderr, "--timeout -1s") {
		t.Errorf("code %d stdout %q stderr %q", o.code, o.stdout, o.stderr)
	}
}
