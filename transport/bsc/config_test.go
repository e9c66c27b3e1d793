package bsc

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"cellagent/modem/clock/clocktest"
)

func TestBaseURLRules(t *testing.T) {
	tests := []struct {
		url   string
		allow bool
		ok    bool
	}{
		{"https://api.example.com", false, true},
		{"https://api.example.com/management-api/", false, true},
		{"http://127.0.0.1:8080", false, true},
		{"http://[::1]:8080", false, true},
		{"http://localhost:8080", false, true},
		{"http://api.example.com", false, false},
		{"http://api.example.com", true, true},
		{"ftp://api.example.com", true, false},
		{"https://user:pw@api.example.com", false, false},
		{"https://", false, false},
		{"", false, false},
		{"https://api.example.com?x=1", false, false},
	}
	for _, tc := range tests {
		u, err := parseBaseURL(tc.url, tc.allow)
		if (err == nil) != tc.ok {
			t.Errorf("%q allow=%v: err=%v, want ok=%v", tc.url, tc.allow, err, tc.ok)
		}
		if err == nil && strings.HasSuffix(u.Path, "management-api") {
			t.Errorf("%q: prefix not stripped: %s", tc.url, u.Path)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	base := Config{BaseURL: "https://api.example.com", Username: "u", Password: "p"}
	for name, mod := range map[string]func(*Config){
		"no password":    func(c *Config) { c.Password = "" },
		"colon in user":  func(c *Config) { c.Username = "a:b" },
		"cert w/o key":   func(c *Config) { c.ClientCert = "x.pem" },
		"missing CA":     func(c *Config) { c.CAFile = "/nonexistent/ca.pem" },
		"plain http":     func(c *Config) { c.BaseURL = "http://api.example.com" },
		"CA file no PEM": func(c *Config) { c.CAFile = writeTemp(t, "not a cert") },
	} {
		c := base
		mod(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := New(base); err != nil {
		t.Fatal(err)
	}
}

func writeTemp(t *testing.T, s string) string {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidateICCID(t *testing.T) {
	for _, ok := range []string{"8988228066600000000", "89882280666000000001", "8988228066600000000F"} {
		if err := ValidateICCID(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "898822806660000000", "898822806660000000012", "8988228066600000000X", "89882280666000000../", "８９８８２２８０６６６００００００００"} {
		if err := ValidateICCID(bad); !errors.Is(err, ErrInvalidICCID) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"3", 3 * time.Second, true},
		{" 0 ", 0, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{"", 0, false},
		{"-1", 0, false},
		{"soon", 0, false},
		{"99999999999", 0, false},
		// A date further off than the longest delay we accept as
		// seconds says more about our clock (no RTC, not yet set) than
		// about the platform: it would hold the ladder for months.
		{now.Add(40 * 24 * time.Hour).Format(http.TimeFormat), 0, false},
	}
	for _, tc := range tests {
		got, ok := parseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%q: got %v,%v want %v,%v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestLimiterPacesRequests(t *testing.T) {
	t0 := time.Unix(0, 0)
	c := clocktest.New(t0, 0)
	l := newLimiter(2, 2, c)
	var at []time.Duration
	for range 4 {
		if err := l.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		at = append(at, c.Now().Sub(t0))
	}
	// Burst of 2 free, then one every 500 ms.
	if want := []time.Duration{0, 0, 500 * time.Millisecond, time.Second}; !slices.Equal(at, want) {
		t.Fatalf("requests at %v, want %v", at, want)
	}
}
