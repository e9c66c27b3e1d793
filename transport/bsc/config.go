package bsc

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"cellagent/modem/clock"
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
	// Time is the clock the API's certificate is checked against; default
	// the system's (see mqtt.Conn.Time).
	Time  func() time.Time
	Retry RetryPolicy

	// RateLimit is the client-side request budget in requests per second
	// (default 5, a conservative budget of our own: the operator names none, OPERATOR.md §2);
	// negative disables it. RateBurst defaults to 5.
	RateLimit float64
	RateBurst int

	Logger *slog.Logger // audit log; one info line per HTTP call

	// HTTPClient replaces the client built from the TLS settings above.
	HTTPClient *http.Client

	// Clock is policy time (clock.System when nil): token expiry, the
	// back-off between attempts, Retry-After and the rate budget are
	// measured and waited on it. Those waits are the client's own pacing,
	// not waits for the platform to answer (each attempt is bounded by
	// Timeout in real time), so a test on clocktest.Fake skips them and
	// reads them off the clock, as the supervisor's do.
	Clock clock.Clock
	// Rand draws the jitter of the back-off (the process's random source
	// when nil). Seeded, it makes the waits repeatable.
	Rand rand.Source
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
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, Time: cfg.Time}
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

// jitter draws a uniform duration in [0, d] from r, or from the
// process's source when r is nil ("full jitter": clients that failed
// together do not retry together).
type jitter struct {
	mu sync.Mutex // a rand.Rand is not safe for concurrent use
	r  *rand.Rand
}

func newJitter(src rand.Source) *jitter {
	if src == nil {
		return &jitter{}
	}
	return &jitter{r: rand.New(src)}
}

func (j *jitter) draw(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	if j.r == nil {
		return rand.N(d + 1)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return time.Duration(j.r.Int64N(int64(d) + 1))
}
