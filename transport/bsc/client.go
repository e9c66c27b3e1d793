package bsc

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"cellagent/modem/clock"
)

// maxBody bounds what we read from any answer; real answers are small.
const maxBody = 4 << 20

// Client talks to the BSC management API. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	user    string
	basic   string // precomputed Basic header value; never logged
	http    *http.Client
	timeout time.Duration
	retry   RetryPolicy
	limit   *limiter
	log     *slog.Logger
	clock   clock.Clock
	jitter  *jitter
	tokens  tokenSource
}

// New validates cfg and returns a client. No network traffic happens here.
func New(cfg Config) (*Client, error) {
	base, err := parseBaseURL(cfg.BaseURL, cfg.AllowInsecureHTTP)
	if err != nil {
		return nil, err
	}
	if cfg.Username == "" || cfg.Password == "" {
		return nil, errors.New("bsc: config: Username and Password are required")
	}
	if strings.Contains(cfg.Username, ":") {
		return nil, errors.New("bsc: config: Username must not contain ':' (Basic auth separator)")
	}
	hc := cfg.HTTPClient
	if hc == nil {
		if hc, err = buildHTTPClient(cfg); err != nil {
			return nil, err
		}
	}
	c := &Client{
		base:    base,
		user:    cfg.Username,
		basic:   "Basic " + base64.StdEncoding.EncodeToString([]byte(cfg.Username+":"+cfg.Password)),
		http:    hc,
		timeout: cfg.Timeout,
		retry:   cfg.Retry.withDefaults(),
		log:     cfg.Logger,
		clock:   cfg.Clock,
		jitter:  newJitter(cfg.Rand),
	}
	if c.timeout <= 0 {
		c.timeout = 15 * time.Second
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.clock == nil {
		c.clock = clock.System
	}
	if cfg.RateLimit >= 0 {
		rate, burst := cfg.RateLimit, cfg.RateBurst
		if rate == 0 {
			rate = 5
		}
		if burst <= 0 {
			burst = 5
		}
		c.limit = newLimiter(rate, burst, c.clock)
	}
	c.tokens.c = c
	return c, nil
}

type request struct {
	method      string
	path        string // absolute path on the host, e.g. /management-api/v1/sims
	query       url.Values
	body        []byte
	contentType string
	basicAuth   bool // token endpoint; otherwise a bearer token is sent
	// idempotent calls are retried on 5xx and on any network error; others
	// only when the request provably never left this host.
	idempotent bool
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do runs one API call with rate limiting, authentication, per-attempt
// timeout, retries and an audit line per HTTP exchange.
func (c *Client) do(ctx context.Context, rq request) (*response, error) {
	refreshed := false
	var lastErr error
	for attempt := 1; ; attempt++ {
		if attempt > c.retry.MaxAttempts {
			return nil, fmt.Errorf("bsc: %s %s: giving up after %d attempts: %w", rq.method, rq.path, c.retry.MaxAttempts, lastErr)
		}
		var tok *token
		if !rq.basicAuth {
			var err error
			if tok, err = c.tokens.get(ctx); err != nil {
				return nil, fmt.Errorf("bsc: %s %s: getting a token: %w", rq.method, rq.path, err)
			}
		}
		if c.limit != nil {
			if err := c.limit.wait(ctx); err != nil {
				return nil, fmt.Errorf("bsc: %s %s: waiting for the client rate limit: %w", rq.method, rq.path, err)
			}
		}
		resp, sent, err := c.roundTrip(ctx, rq, tok, attempt)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("bsc: %s %s: %w", rq.method, rq.path, ctx.Err())
			}
			if !rq.idempotent && sent {
				return nil, fmt.Errorf("bsc: %s %s: not retried because the request may have reached the platform: %w", rq.method, rq.path, err)
			}
			lastErr = err
			if err := c.backoff(ctx, attempt); err != nil {
				return nil, fmt.Errorf("bsc: %s %s: %w (after %v)", rq.method, rq.path, err, lastErr)
			}
			continue
		}
		switch s := resp.status; {
		case s >= 200 && s < 300:
			return resp, nil
		case s == http.StatusUnauthorized && rq.basicAuth:
			return nil, fmt.Errorf("%w: the platform rejected the API credentials for user %q (%s); check the username and password file, and that the user is a portal administrator (only they have API access)", ErrUnauthorized, c.user, excerpt(resp.body))
		case s == http.StatusUnauthorized && !refreshed:
			// The token may have been revoked or expired early: drop it,
			// fetch one fresh token and retry this call once, outside the
			// attempt budget.
			c.tokens.invalidate(tok)
			refreshed = true
			attempt--
			continue
		case s == http.StatusUnauthorized:
			return nil, fmt.Errorf("%w: %s %s: a freshly issued token was refused too", ErrUnauthorized, rq.method, rq.path)
		case s == http.StatusForbidden:
			return nil, fmt.Errorf("%w: %s %s: forbidden (403); only portal administrators have API access: %s", ErrUnauthorized, rq.method, rq.path, excerpt(resp.body))
		case s == http.StatusNotFound:
			return nil, fmt.Errorf("%w: %s %s: %s", ErrNotFound, rq.method, rq.path, excerpt(resp.body))
		case s == http.StatusTooManyRequests:
			wait, ok := parseRetryAfter(resp.header.Get("Retry-After"), c.clock.Now())
			terr := &ThrottledError{Method: rq.method, Path: rq.path, RetryAfter: wait}
			if wait > c.retry.MaxRetryAfter || attempt == c.retry.MaxAttempts {
				return nil, terr
			}
			// 429 means the platform did not act on the request, so even a
			// reset or SMS may be retried.
			lastErr = terr
			if !ok {
				wait = c.backoffDelay(attempt)
			}
			if err := clock.SleepOn(ctx, c.clock, wait); err != nil {
				return nil, fmt.Errorf("bsc: %s %s: %w (while throttled)", rq.method, rq.path, err)
			}
		case s >= 500 && rq.idempotent:
			lastErr = &APIError{Method: rq.method, Path: rq.path, Status: s, Body: excerpt(resp.body)}
			if attempt == c.retry.MaxAttempts {
				continue
			}
			if err := c.backoff(ctx, attempt); err != nil {
				return nil, fmt.Errorf("bsc: %s %s: %w (after %v)", rq.method, rq.path, err, lastErr)
			}
		default:
			return nil, &APIError{Method: rq.method, Path: rq.path, Status: s, Body: excerpt(resp.body)}
		}
	}
}

// roundTrip performs one HTTP exchange. sent reports whether the request
// was (possibly) written to the wire, which decides whether a non-idempotent
// call may be retried after a network error.
func (c *Client) roundTrip(ctx context.Context, rq request, tok *token, attempt int) (_ *response, sent bool, _ error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	// The transport may still be writing when Do returns on a timeout.
	var wrote atomic.Bool
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
		WroteHeaderField: func(string, []string) { wrote.Store(true) },
	})
	u := *c.base
	u.Path = c.base.Path + rq.path
	u.RawQuery = rq.query.Encode()
	var body io.Reader
	if rq.body != nil {
		body = bytes.NewReader(rq.body)
	}
	req, err := http.NewRequestWithContext(actx, rq.method, u.String(), body)
	if err != nil {
		return nil, false, fmt.Errorf("bsc: building %s %s: %w", rq.method, rq.path, err)
	}
	req.Header.Set("Accept", "application/json")
	if rq.contentType != "" {
		req.Header.Set("Content-Type", rq.contentType)
	}
	if rq.basicAuth {
		req.Header.Set("Authorization", c.basic)
	} else {
		req.Header.Set("Authorization", "Bearer "+tok.value)
	}

	start := time.Now() // the answer's latency is real time
	resp, err := c.http.Do(req)
	var out *response
	if err == nil {
		var b []byte
		b, err = io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
		resp.Body.Close()
		if err == nil && len(b) > maxBody {
			err = fmt.Errorf("answer larger than %d bytes", maxBody)
		}
		if err != nil {
			err = fmt.Errorf("bsc: reading %s %s answer: %w", rq.method, rq.path, err)
		} else {
			out = &response{status: resp.StatusCode, header: resp.Header, body: b}
		}
	}
	c.audit(rq, out, err, time.Since(start), attempt)
	if err != nil {
		return nil, wrote.Load(), err
	}
	return out, true, nil
}

func (c *Client) audit(rq request, resp *response, err error, latency time.Duration, attempt int) {
	attrs := []slog.Attr{
		slog.String("method", rq.method),
		slog.String("path", rq.path),
		slog.Duration("latency", latency),
		slog.Int("attempt", attempt),
	}
	if resp != nil {
		attrs = append(attrs, slog.Int("status", resp.status))
	} else {
		attrs = append(attrs, slog.Int("status", 0), slog.String("error", err.Error()))
	}
	c.log.LogAttrs(context.Background(), slog.LevelInfo, "bsc api call", attrs...)
}

func (c *Client) backoffDelay(attempt int) time.Duration {
	return c.jitter.draw(clock.Backoff(c.retry.BaseDelay, c.retry.MaxDelay, attempt))
}

func (c *Client) backoff(ctx context.Context, attempt int) error {
	if attempt >= c.retry.MaxAttempts {
		return nil
	}
	return clock.SleepOn(ctx, c.clock, c.backoffDelay(attempt))
}

// parseRetryAfter accepts delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
// ok is false when the header is absent or unusable.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	const longest = 24 * time.Hour
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 || n > int64(longest/time.Second) {
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	// A date is read against our own clock, which on a gateway without a
	// battery-backed clock may be far behind: bounded as the seconds are.
	if t, err := http.ParseTime(v); err == nil && t.Sub(now) <= longest {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
