package bsc

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// We do not use golang.org/x/oauth2/clientcredentials: with
// AuthStyleInHeader it URL-query-escapes client id and secret before the
// Basic encoding (RFC 6749 §2.3.1), which differs from the operator's
// base64(user:password) (OPERATOR.md §1) for any password with reserved characters; its
// expiry check reads a package-global clock, so the 240-minute cap and
// early refresh cannot be tested with an injected clock; and its
// ReuseTokenSource has no way to drop a token the platform just refused.

// maxTokenLifetime is the operator's token lifetime (OPERATOR.md §1); an expires_in beyond it
// is not trusted.
const maxTokenLifetime = 240 * time.Minute

type token struct {
	value  string
	expiry time.Time // already shortened by the refresh margin
}

type tokenCall struct {
	done chan struct{}
	tok  *token
	err  error
}

// tokenSource caches one token and collapses concurrent refreshes into one
// request.
type tokenSource struct {
	c        *Client
	mu       sync.Mutex
	tok      *token
	inflight *tokenCall
}

func (ts *tokenSource) get(ctx context.Context) (*token, error) {
	ts.mu.Lock()
	if ts.tok != nil && ts.c.clock.Now().Before(ts.tok.expiry) {
		t := ts.tok
		ts.mu.Unlock()
		return t, nil
	}
	call := ts.inflight
	if call == nil {
		call = &tokenCall{done: make(chan struct{})}
		ts.inflight = call
		// The fetch is detached from the first caller's context so that its
		// cancellation does not fail everyone else waiting on the same token.
		go ts.fetch(context.WithoutCancel(ctx), call)
	}
	ts.mu.Unlock()
	select {
	case <-call.done:
		return call.tok, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (ts *tokenSource) fetch(ctx context.Context, call *tokenCall) {
	// Bound the detached fetch: all attempts with their back-off.
	ctx, cancel := context.WithTimeout(ctx, ts.c.timeout*time.Duration(ts.c.retry.MaxAttempts)+ts.c.retry.MaxDelay)
	defer cancel()
	call.tok, call.err = ts.c.requestToken(ctx)
	ts.mu.Lock()
	if call.err == nil {
		ts.tok = call.tok
	}
	ts.inflight = nil
	ts.mu.Unlock()
	close(call.done)
}

// invalidate drops tok if it is still the cached one, so a 401 forces one
// fresh token without discarding a newer token another caller fetched.
func (ts *tokenSource) invalidate(tok *token) {
	ts.mu.Lock()
	if ts.tok == tok {
		ts.tok = nil
	}
	ts.mu.Unlock()
}

func (c *Client) requestToken(ctx context.Context) (*token, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	resp, err := c.do(ctx, request{
		method:      http.MethodPost,
		path:        "/management-api/oauth/token",
		body:        []byte(form.Encode()),
		contentType: "application/x-www-form-urlencoded",
		basicAuth:   true,
		idempotent:  true, // issuing a token twice is harmless
	})
	if err != nil {
		return nil, err
	}
	tr, err := decodeToken(resp.body)
	if err != nil {
		return nil, err
	}
	life := min(time.Duration(tr.ExpiresIn)*time.Second, maxTokenLifetime)
	// Refresh a little early so a token never expires in flight; short
	// lifetimes (tests, odd platforms) get a proportional margin.
	margin := min(time.Minute, life/5)
	return &token{value: tr.AccessToken, expiry: c.clock.Now().Add(life - margin)}, nil
}
