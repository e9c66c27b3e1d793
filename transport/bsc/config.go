package bsc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"cellagent/transport/secret"
)

// Config configures a Client. Username and Password are the portal
// administrator's API credentials; load the password with secret.Read
// (a file or a systemd credential), never from a flag.
type Config struct {
	BaseURL  string // e.g. https://api.example.com; "/management-api" is appended
	Username string
	Password string

	CAFile                string // PEM bundle; when set, only these CAs are trusted
	ClientCert, ClientKey string // PEM files for mutual TLS; both or neither
	// AllowInsecureHTTP permits plain http to a non-loopback host. Loopback
	// is always allowed so a local simulator needs no certificate.
	AllowInsecureHTTP bool

	Timeout time.Duration // per HTTP attempt; default 15 s
	Retry   RetryPolicy

	// RateLimit is the client-side request budget in requests per second
	// (default 5, a conservative budget of our own: the guide names none);
	// negative disables it. RateBurst defaults to 5.
	RateLimit float64
	RateBurst int

	Logger *slog.Logger // audit log; one info line per HTTP call

	// HTTPClient replaces the client built from the TLS settings above.
	HTTPClient *http.Client

	// Hooks for tests. Now and Sleep drive token expiry, back-off, Retry-After
	// and the rate limiter; Jitter returns a uniform duration in [0, d].
	Now    func() time.Time
	Sleep  func(ctx context.Context, d time.Duration) error
	Jitter func(d time.Duration) time.Duration
}

// RetryPolicy bounds retries. Zero fields take the defaults.
type RetryPolicy struct {
	MaxAttempts int           // attempts per call including the first; default 4
	BaseDelay   time.Duration // first back-off ceiling; default 500 ms
	MaxDelay    time.Duration // back-off ceiling; default 30 s
	// MaxRetryAfter caps how long one 429 may make us wait. A longer
	// Retry-After is returned to the caller as *ThrottledError at once:
	// waiting less than the platform asked would only earn another 429.
	// Default 60 s.
	MaxRetryAfter time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 4
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 500 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 30 * time.Second
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = time.Minute
	}
	return p
}

// parseBaseURL enforces HTTPS except to loopback or when explicitly allowed,
// because the Basic credentials and bearer tokens travel in headers.
func parseBaseURL(raw string, allowHTTP bool) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("bsc: config: BaseURL is empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("bsc: config: BaseURL: %w", err)
	}
	if u.User != nil {
		return nil, errors.New("bsc: config: BaseURL must not carry credentials; set Username/Password")
	}
	if u.Host == "" {
		return nil, fmt.Errorf("bsc: config: BaseURL %q has no host", raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowHTTP && !IsLoopback(u.Hostname()) {
			return nil, fmt.Errorf("bsc: config: BaseURL %q is plain http to a non-loopback host; use https or set AllowInsecureHTTP", raw)
		}
	default:
		return nil, fmt.Errorf("bsc: config: BaseURL %q: scheme must be https (or http to loopback)", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("bsc: config: BaseURL %q must not have a query or fragment", raw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.Path = strings.TrimSuffix(u.Path, "/management-api")
	return u, nil
}

// IsLoopback reports whether host (a URL's host name) is this machine:
// "localhost" or a loopback address, where plain http exposes nothing.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func buildHTTPClient(cfg Config) (*http.Client, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if err := secret.LoadTLS(tlsCfg, cfg.CAFile, cfg.ClientCert, cfg.ClientKey); err != nil {
		return nil, fmt.Errorf("bsc: config: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	return &http.Client{
		Transport: tr,
		// The API never redirects; following one could carry the bearer
		// token to another host or downgrade to http.
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("bsc: refusing to follow a redirect")
		},
	}, nil
}

func fullJitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}
