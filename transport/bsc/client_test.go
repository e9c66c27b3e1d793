package bsc_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cellagent/modem/clock/clocktest"
	"cellagent/transport/bsc"
	"cellagent/transport/bsc/bscemu"
	"cellagent/transport/bsc/bscemu/bscemutest"
)

const (
	iccid1   = "89882280000000000011"
	iccid2   = "89882280000000000029"
	unknown  = "89882280000000000999"
	user     = "admin@example.com"
	password = "pa:ss w/rd+%&=" // reserved characters on purpose: Basic must carry them raw
)

func startSim(t *testing.T, mod func(*bscemu.Config)) *bscemu.Server {
	t.Helper()
	cfg := bscemu.Config{
		Users:      map[string]string{user: password},
		SIMs:       []bscemu.SIMConfig{{ICCID: iccid1, MSISDN: "882285100000011", DataBytes: 1000}, {ICCID: iccid2}},
		ResetDelay: 20 * time.Millisecond,
		RetryBase:  5 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	return bscemutest.Start(t, cfg, nil)
}

// jitterSeed seeds the clients' back-off jitter, so their waits repeat.
const jitterSeed = 15

// newClient builds a client for base whose waits run on clk (the system
// clock when nil).
func newClient(t *testing.T, base string, clk *clocktest.Fake, mod func(*bsc.Config)) *bsc.Client {
	t.Helper()
	cfg := bsc.Config{
		BaseURL:   base,
		Username:  user,
		Password:  password,
		Timeout:   2 * time.Second,
		RateLimit: -1,
		Retry:     bsc.RetryPolicy{MaxAttempts: 3, BaseDelay: 100 * time.Millisecond},
		Rand:      rand.NewPCG(jitterSeed, jitterSeed),
	}
	if clk != nil {
		cfg.Clock = clk
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := bsc.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTokenCachedAcrossCallsAndGoroutines(t *testing.T) {
	sim := startSim(t, nil)
	c := newClient(t, sim.URL(), nil, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			if _, err := c.GetSIM(ctx, iccid1); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := c.DataQuota(ctx, iccid1); err != nil {
			t.Fatal(err)
		}
	}
	if n := sim.TokenRequests(); n != 1 {
		t.Fatalf("token requests = %d, want 1", n)
	}
}

func TestRefreshOn401(t *testing.T) {
	sim := startSim(t, nil)
	c := newClient(t, sim.URL(), nil, nil)
	ctx := context.Background()
	if _, err := c.GetSIM(ctx, iccid1); err != nil {
		t.Fatal(err)
	}
	sim.RevokeTokens()
	if _, err := c.GetSIM(ctx, iccid1); err != nil {
		t.Fatalf("after revoke: %v", err)
	}
	sim.ExpireTokensAfter(0)
	if _, err := c.Events(ctx, iccid1); err != nil {
		t.Fatalf("after early expiry: %v", err)
	}
	if n := sim.TokenRequests(); n != 3 {
		t.Fatalf("token requests = %d, want 3", n)
	}
}

func TestThrottleHonoursRetryAfter(t *testing.T) {
	sim := startSim(t, nil)
	clk := clocktest.New(time.Now(), 0)
	c := newClient(t, sim.URL(), clk, nil)
	ctx := context.Background()
	if _, err := c.GetSIM(ctx, iccid1); err != nil {
		t.Fatal(err)
	}
	start := clk.Now()
	sim.InjectFault(bscemu.Fault{Kind: bscemu.FaultThrottle, RetryAfter: "7"})
	if _, err := c.GetSIM(ctx, iccid1); err != nil {
		t.Fatal(err)
	}
	if w := clk.Now().Sub(start); w != 7*time.Second {
		t.Fatalf("waited %s for Retry-After: 7", w)
	}
	start = clk.Now()
	sim.InjectFault(bscemu.Fault{Kind: bscemu.FaultThrottle, RetryAfter: start.Add(20 * time.Second).UTC().Format(http.TimeFormat)})
	if _, err := c.Reset(ctx, iccid1); err != nil { // 429 means not acted on: even a reset is retried
		t.Fatal(err)
	}
	// An HTTP-date has whole seconds.
	if w := clk.Now().Sub(start); w <= 19*time.Second || w > 20*time.Second {
		t.Fatalf("waited %s for a Retry-After date 20 s ahead", w)
	}
	start = clk.Now()
	// Beyond the cap: no waiting, the caller gets the platform's demand.
	sim.InjectFault(bscemu.Fault{Kind: bscemu.FaultThrottle, RetryAfter: "3600"})
	_, err := c.GetSIM(ctx, iccid1)
	var te *bsc.ThrottledError
	if !errors.As(err, &te) || te.RetryAfter != time.Hour {
		t.Fatalf("want ThrottledError{1h}, got %v", err)
	}
	if w := clk.Now().Sub(start); w != 0 {
		t.Fatalf("waited %s on a Retry-After beyond the cap", w)
	}
}

func TestBackoffOn5xxThenSuccess(t *testing.T) {
	sim := startSim(t, nil)
	start := time.Now()
	clk := clocktest.New(start, 0)
	c := newClient(t, sim.URL(), clk, nil)
	sim.InjectFault(bscemu.Fault{Kind: bscemu.FaultServerError, Count: 2, Status: 503})
	q, err := c.DataQuota(context.Background(), iccid1)
	if err != nil {
		t.Fatal(err)
	}
	if q.Total != 1000 {
		t.Fatalf("quota %+v", q)
	}
	// Full jitter below a ceiling that doubles: 100 ms, then 200 ms.
	r := rand.New(rand.NewPCG(jitterSeed, jitterSeed))
	want := time.Duration(r.Int64N(int64(100*time.Millisecond)+1) + r.Int64N(int64(200*time.Millisecond)+1))
	if w := clk.Now().Sub(start); w != want {
		t.Fatalf("backed off %s, want %s", w, want)
	}
}

func TestGiveUpAfterMaxAttempts(t *testing.T) {
	sim := startSim(t, nil)
	c := newClient(t, sim.URL(), clocktest.New(time.Now(), 0), nil)
	sim.InjectFault(bscemu.Fault{Kind: bscemu.FaultServerError, Count: 10})
	_, err := c.Usage(context.Background(), iccid1)
	var ae *bsc.APIError
	if !errors.As(err, &ae) || ae.Status != 500 || !strings.Contains(err.Error(), "giving up after 3 attempts") {
		t.Fatalf("got %v", err)
	}
	if !strings.Contains(err.Error(), "/management-api/v1/sims/"+iccid1+"/usage") {
		t.Fatalf("error does not name the call: %v", err)
	}
}

func TestNonIdempotentPostNotRetriedOn5xx(t *testing.T) {
	sim := startSim(t, nil)
	c := newClient(t, sim.URL(), clocktest.New(time.Now(), 0), nil)
	if _, err := c.GetSIM(context.Background(), iccid1); err != nil {
		t.Fatal(err)
	}
	before := sim.APIRequests()
	sim.InjectFault(bscemu.Fault{Kind: bscemu.FaultServerError, Count: 5})
	_, err := c.Reset(context.Background(), iccid1)
	var ae *bsc.APIError
	if !errors.As(err, &ae) || ae.Status != 500 {
		t.Fatalf("got %v", err)
	}
	if n := sim.APIRequests() - before; n != 1 {
		t.Fatalf("reset sent %d times, want 1", n)
	}
	sim.ClearFaults()
}

func TestMalformedJSON(t *testing.T) {
	sim := startSim(t, nil)
	c := newClient(t, sim.URL(), nil, nil)
	sim.InjectFault(bscemu.Fault{Kind: bscemu.FaultMalformed})
	_, err := c.GetSIM(context.Background(), iccid1)
	var de *bsc.DecodeError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "malformed JSON") || !strings.Contains(err.Error(), "8988228066") {
		t.Fatalf("got %v", err)
	}
	sim.InjectFault(bscemu.Fault{Kind: bscemu.FaultMalformed})
	if _, err := c.DataQuota(context.Background(), iccid1); !errors.Is(err, bsc.ErrQuotaUnavailable) || !errors.As(err, &de) {
		t.Fatalf("quota: got %v", err)
	}
}

func TestTimeout(t *testing.T) {
	sim := startSim(t, nil)
	c := newClient(t, sim.URL(), clocktest.New(time.Now(), 0), func(c *bsc.Config) {
		c.Timeout = 100 * time.Millisecond
		c.Retry.MaxAttempts = 2
	})
	if _, err := c.GetSIM(context.Background(), iccid1); err != nil { // token first, unaffected
		t.Fatal(err)
	}
	sim.InjectFault(bscemu.Fault{Kind: bscemu.FaultSlow, Count: 2, Delay: 2 * time.Second})
	start := time.Now()
	_, err := c.ConnectivityInfo(context.Background(), iccid1)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "giving up after 2 attempts") {
		t.Fatalf("got %v", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("took %v; per-attempt timeout not applied", el)
	}
}

func TestCallerCancellationIsNotRetried(t *testing.T) {
	sim := startSim(t, nil)
	start := time.Now()
	clk := clocktest.New(start, 0)
	c := newClient(t, sim.URL(), clk, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	sim.InjectFault(bscemu.Fault{Kind: bscemu.FaultSlow, Count: 1, Delay: 2 * time.Second})
	_, err := c.GetSIM(ctx, iccid1)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if w := clk.Now().Sub(start); w != 0 {
		t.Fatalf("backed off %s after the caller gave up", w)
	}
}

func TestNotFoundAndInvalidICCID(t *testing.T) {
	sim := startSim(t, nil)
	c := newClient(t, sim.URL(), nil, nil)
	if _, err := c.GetSIM(context.Background(), unknown); !errors.Is(err, bsc.ErrNotFound) || !strings.Contains(err.Error(), unknown) {
		t.Fatalf("unknown ICCID: %v", err)
	}
	before := sim.APIRequests()
	if _, err := c.Reset(context.Background(), "8988/../../oauth"); !errors.Is(err, bsc.ErrInvalidICCID) {
		t.Fatalf("bad ICCID: %v", err)
	}
	if sim.APIRequests() != before {
		t.Fatal("an invalid ICCID reached the platform")
	}
}

func TestBadCredentials(t *testing.T) {
	sim := startSim(t, nil)
	c := newClient(t, sim.URL(), clocktest.New(time.Now(), 0), func(c *bsc.Config) { c.Password = "wrong" })
	_, err := c.GetSIM(context.Background(), iccid1)
	if !errors.Is(err, bsc.ErrUnauthorized) {
		t.Fatalf("got %v", err)
	}
	for _, want := range []string{"rejected the API credentials", user, "portal administrator", "Auth Error"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Error("error contains the password")
	}
	if n := sim.TokenRequests(); n != 1 {
		t.Errorf("bad credentials retried: %d token requests", n)
	}
}

// headerRecorder captures the secrets actually sent, to grep logs for them.
type headerRecorder struct {
	mu    sync.Mutex
	auths []string
	next  http.RoundTripper
}

func (h *headerRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.auths = append(h.auths, r.Header.Get("Authorization"))
	h.mu.Unlock()
	return h.next.RoundTrip(r)
}

func TestAuditLogHasCallsButNoSecrets(t *testing.T) {
	sim := startSim(t, nil)
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
	hr := &headerRecorder{next: http.DefaultTransport}
	c := newClient(t, sim.URL(), clocktest.New(time.Now(), 0), func(c *bsc.Config) {
		c.Logger = logger
		c.HTTPClient = &http.Client{Transport: hr}
	})
	ctx := context.Background()
	if _, err := c.DataQuota(ctx, iccid1); err != nil {
		t.Fatal(err)
	}
	sim.RevokeTokens()
	if _, err := c.Reset(ctx, iccid1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendSMS(ctx, iccid1, bsc.MTSMS{Payload: "hi", SourceAddress: "bench"}); err != nil {
		t.Fatal(err)
	}
	_, _ = c.GetSIM(ctx, unknown)

	mu.Lock()
	logs := buf.String()
	mu.Unlock()
	for _, want := range []string{
		`"msg":"bsc api call"`, `"method":"POST","path":"/management-api/oauth/token"`,
		`"method":"GET","path":"/management-api/v1/sims/` + iccid1 + `/quota/data"`,
		`"path":"/management-api/v1/sims/` + iccid1 + `/reset"`, `"status":401`, `"status":202`, `"status":201`,
		`"path":"/management-api/v1/sims/` + unknown + `"`, `"status":404`, `"latency":`, `"attempt":1`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
	hr.mu.Lock()
	defer hr.mu.Unlock()
	secrets := []string{password, base64.StdEncoding.EncodeToString([]byte(user + ":" + password)), "Authorization", "Bearer"}
	var tokens int
	for _, a := range hr.auths {
		if tok, ok := strings.CutPrefix(a, "Bearer "); ok {
			secrets = append(secrets, tok)
			tokens++
		}
	}
	if tokens == 0 {
		t.Fatal("no bearer token captured")
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("audit log contains secret %q", s)
		}
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestTokenRequestExactlyAsGuide checks the wire format against a bare
// server, and the 240-minute cap with an injected clock.
func TestTokenRequestExactlyAsGuide(t *testing.T) {
	var tokenCalls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/management-api/oauth/token" {
			tokenCalls.Add(1)
			body, _ := io.ReadAll(r.Body)
			wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
			if r.Method != http.MethodPost || r.Header.Get("Authorization") != wantAuth ||
				r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || string(body) != "grant_type=client_credentials" {
				t.Errorf("token request: %s auth=%q ct=%q body=%q", r.Method, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), body)
			}
			io.WriteString(w, `{"access_token":"11111111-2222-4333-8444-555555555555","token_type":"bearer","expires_in":86400,"scope":"all","orgId":"5136"}`)
			return
		}
		if r.Header.Get("Authorization") != "Bearer 11111111-2222-4333-8444-555555555555" {
			t.Errorf("API call auth %q", r.Header.Get("Authorization"))
		}
		io.WriteString(w, `{"status":"ACTIVE","total":1,"remaining":1,"unit":"sms"}`)
	}))
	defer srv.Close()
	clk := clocktest.New(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), 0)
	c := newClient(t, srv.URL+"/management-api", clk, nil)
	ctx := context.Background()
	call := func() {
		t.Helper()
		if _, err := c.SMSQuota(ctx, iccid1); err != nil {
			t.Fatal(err)
		}
	}
	call()
	clk.Advance(230 * time.Minute) // expires_in says a day, but the operator's 240 min rule applies (OPERATOR.md §1)
	call()
	if n := tokenCalls.Load(); n != 1 {
		t.Fatalf("token calls after 230 min = %d, want 1", n)
	}
	clk.Advance(10 * time.Minute)
	call()
	if n := tokenCalls.Load(); n != 2 {
		t.Fatalf("token calls after 240 min = %d, want 2", n)
	}
}

func TestQuotaAndUsageFollowSimulatedTraffic(t *testing.T) {
	sim := startSim(t, nil)
	c := newClient(t, sim.URL(), nil, nil)
	ctx := context.Background()
	if err := sim.UseData(iccid1, 960); err != nil {
		t.Fatal(err)
	}
	q, err := c.DataQuota(ctx, iccid1)
	if err != nil || q.Remaining != 40 || !q.Throttled() || q.Exhausted() {
		t.Fatalf("quota %+v, %v", q, err)
	}
	if err := sim.UseData(iccid1, 100); err != nil {
		t.Fatal(err)
	}
	q, err = c.DataQuota(ctx, iccid1)
	if err != nil || !q.Exhausted() || q.Status != bsc.QuotaExhausted {
		t.Fatalf("quota %+v, %v", q, err)
	}
	u, err := c.Usage(ctx, iccid1)
	if err != nil || u.Data.Total != 1060 {
		t.Fatalf("usage %+v, %v", u, err)
	}
	ev, err := c.Events(ctx, iccid1)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range ev {
		types = append(types, e.Type)
	}
	if got := strings.Join(types, ","); got != "SIM_ACTIVATED,THRESHOLD_NOTIFY,THRESHOLD_THROTTLE,QUOTA_EXHAUSTED" {
		t.Fatalf("events %s", got)
	}
	sims, err := c.ListSIMs(ctx, bsc.ListOptions{Page: 2, PerPage: 1})
	if err != nil || len(sims) != 1 || sims[0].ICCID != iccid2 {
		t.Fatalf("list page 2: %+v, %v", sims, err)
	}
	sq, err := c.SMSQuota(ctx, iccid2)
	if err != nil || sq.Total != 250 || sq.Unit != "sms" {
		t.Fatalf("sms quota %+v, %v", sq, err)
	}
}

func TestSendSMSValidation(t *testing.T) {
	c := newClient(t, "http://127.0.0.1:1", nil, nil)
	for _, msg := range []bsc.MTSMS{{}, {Payload: strings.Repeat("x", 1601)}, {Payload: "\xff"}} {
		if _, err := c.SendSMS(context.Background(), iccid1, msg); err == nil {
			t.Errorf("payload %q accepted", msg.Payload)
		}
	}
}
