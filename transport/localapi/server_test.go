package localapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeBackend keeps an in-memory outbox and feed.
type fakeBackend struct {
	mu      sync.Mutex
	sent    map[string]SMSRequest
	feed    []Event
	changed chan struct{}
	hold    chan struct{} // when set, SendSMS waits on it
}

func newFake() *fakeBackend {
	return &fakeBackend{sent: map[string]SMSRequest{}, changed: make(chan struct{})}
}

func (f *fakeBackend) Status(context.Context) ([]byte, error) { return []byte(`{"ok":true}`), nil }

func (f *fakeBackend) SendSMS(ctx context.Context, r SMSRequest) (SMSQueued, error) {
	if f.hold != nil {
		select {
		case <-f.hold:
		case <-ctx.Done():
			return SMSQueued{}, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id := "local:" + r.IdempotencyKey
	if r.IdempotencyKey == "" {
		id = fmt.Sprint("mo-", len(f.sent))
	}
	if prev, ok := f.sent[id]; ok {
		if prev.Text != r.Text {
			return SMSQueued{}, fmt.Errorf("%w: key reused", ErrConflict)
		}
		return SMSQueued{ID: id, Parts: 1, Duplicate: true}, nil
	}
	f.sent[id] = r
	return SMSQueued{ID: id, Parts: 1}, nil
}

func (f *fakeBackend) SMS(_ context.Context, id string) (SMSStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.sent[id]; !ok {
		return SMSStatus{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return SMSStatus{ID: id, State: "queued"}, nil
}

func (f *fakeBackend) add(e Event) {
	f.mu.Lock()
	e.Seq = uint64(len(f.feed) + 1)
	f.feed = append(f.feed, e)
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakeBackend) Events(_ context.Context, after uint64, limit int) ([]Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Event
	for _, e := range f.feed {
		if e.Seq > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (f *fakeBackend) WaitEvents(ctx context.Context, after uint64) error {
	for {
		f.mu.Lock()
		n, ch := uint64(len(f.feed)), f.changed
		f.mu.Unlock()
		if n > after {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

func (f *fakeBackend) AT(_ context.Context, r ATRequest) (ATResponse, error) {
	if r.Command == "AT+CFUN=0" && !r.Force {
		return ATResponse{}, fmt.Errorf("%w: refused", ErrForbidden)
	}
	return ATResponse{Lines: []string{"+CSQ: 21,99"}, Result: "OK", OK: true}, nil
}

func (f *fakeBackend) Recover(_ context.Context, step string) error {
	if step != "reattach" {
		return fmt.Errorf("%w: unknown step %q", ErrBadRequest, step)
	}
	return nil
}

// serve starts a server on a socket in a fresh directory.
func serve(t *testing.T, b Backend, mod func(*Config)) (string, *Client) {
	t.Helper()
	dir, err := os.MkdirTemp("", "localapi-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := Config{Backend: b, Path: filepath.Join(dir, SocketName)}
	if mod != nil {
		mod(&cfg)
	}
	s, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(cfg.Path); err == nil {
			t.Error("socket left behind")
		}
	})
	return cfg.Path, NewClient(cfg.Path)
}

// raw sends one request and returns the status and the decoded error
// message, if any.
func raw(t *testing.T, path, method, target string, body io.Reader) (int, string) {
	t.Helper()
	c := NewClient(path)
	defer c.http.CloseIdleConnections()
	req, _ := http.NewRequest(method, "http://agent"+target, body)
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e Error
	if resp.StatusCode >= 400 {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil || e.V != V || e.Error == "" {
			t.Errorf("%s %s: %d with body %q, want the error object", method, target, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, e.Error
}

// streamStatus opens a stream and closes it once the status is known.
func streamStatus(t *testing.T, c *Client, target string) int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://agent"+target, nil)
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestSocketMode(t *testing.T) {
	path, _ := serve(t, newFake(), nil)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v, want a socket with 0660", fi.Mode())
	}
}

// Every malformed request gets a 4xx with a message, and the server goes
// on serving.
func TestBadRequests(t *testing.T) {
	path, c := serve(t, newFake(), nil)
	big := bytes.Repeat([]byte("a"), 10<<20)
	for _, tc := range []struct {
		method, target, body string
		code                 int
		msg                  string
	}{
		{"POST", "/v1/sms", `{"to":"5432145","text":`, 400, "body"},
		{"POST", "/v1/sms", `not json`, 400, "body"},
		{"POST", "/v1/sms", `{"to":"5432145","txt":"hi"}`, 400, "unknown field"},
		{"POST", "/v1/sms", `{"to":"5432145","text":"hi"} {}`, 400, "after the JSON"},
		{"POST", "/v1/sms", `{"v":2,"to":"5432145","text":"hi"}`, 400, "version"},
		{"POST", "/v1/sms", `{"to":"5432145"}`, 400, "exactly one"},
		{"POST", "/v1/sms", `{"to":"5432145","text":"a","data":"AQ=="}`, 400, "exactly one"},
		{"POST", "/v1/sms", `{"text":"hi"}`, 400, "to: required"},
		{"POST", "/v1/sms", `{"to":"1","text":"a","idempotency_key":"` + strings.Repeat("k", 129) + `"}`, 400, "idempotency_key"},
		{"POST", "/v1/sms", `{"to":"1","text":"a","idempotency_key":"a\nb"}`, 400, "printable"},
		{"POST", "/v1/sms", `[]`, 400, "body"},
		{"POST", "/v1/sms", "", 400, "body"},
		{"POST", "/v1/at", `{"command":"AT+CSQ\r\nAT+CFUN=0"}`, 400, "printable"},
		{"POST", "/v1/at", `{"command":"+CSQ"}`, 400, "must start with AT"},
		{"POST", "/v1/at", `{"command":"AT","timeout_ms":999999}`, 400, "timeout_ms"},
		{"POST", "/v1/at", `{"command":"AT+CFUN=0"}`, 403, "refused"},
		{"POST", "/v1/recover", `{"step":"bogus"}`, 400, "unknown step"},
		{"POST", "/v1/recover", `{}`, 400, "step"},
		{"GET", "/v1/sms/nope", "", 404, "nope"},
		{"GET", "/v1/inbox?after=-1", "", 400, "after"},
		{"GET", "/v1/inbox?limit=0", "", 400, "limit"},
		{"GET", "/v1/events?after=x", "", 400, "after"},
		{"GET", "/v1/nothing", "", 404, "no GET /v1/nothing"},
		{"GET", "/v2/status", "", 404, "API version 1"},
		{"DELETE", "/v1/status", "", 405, "method"},
		{"GET", "/v1/sms", "", 405, "method"},
	} {
		code, msg := raw(t, path, tc.method, tc.target, strings.NewReader(tc.body))
		if code != tc.code || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s %s %.40q: %d %q, want %d with %q", tc.method, tc.target, tc.body, code, msg, tc.code, tc.msg)
		}
	}
	code, msg := raw(t, path, "POST", "/v1/sms", bytes.NewReader(big))
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("10 MB body: %d %q, want 413", code, msg)
	}
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatalf("status after the abuse: %v", err)
	}
}

func TestSendAndIdempotency(t *testing.T) {
	_, c := serve(t, newFake(), nil)
	ctx := context.Background()
	q, err := c.SendSMS(ctx, SMSRequest{To: "5432145", Text: "hi", IdempotencyKey: "k1"})
	if err != nil || q.ID != "local:k1" || q.Duplicate || q.V != V {
		t.Fatalf("first send: %+v, %v", q, err)
	}
	q, err = c.SendSMS(ctx, SMSRequest{To: "5432145", Text: "hi", IdempotencyKey: "k1"})
	if err != nil || q.ID != "local:k1" || !q.Duplicate {
		t.Fatalf("retry: %+v, %v", q, err)
	}
	_, err = c.SendSMS(ctx, SMSRequest{To: "5432145", Text: "other", IdempotencyKey: "k1"})
	if ae, ok := err.(*APIError); !ok || ae.Code != http.StatusConflict {
		t.Fatalf("key reused: %v, want 409", err)
	}
	st, err := c.SMS(ctx, "local:k1")
	if err != nil || st.State != "queued" || st.V != V {
		t.Fatalf("sms status: %+v, %v", st, err)
	}
}

// A reader that disconnects and comes back with its cursor gets every
// record once, in order.
func TestEventsResume(t *testing.T) {
	f := newFake()
	_, c := serve(t, f, nil)
	for i := range 3 {
		f.add(Event{Type: EventSMSIn, SMS: &InboundSMS{ID: fmt.Sprint("m", i)}})
	}
	var got []string
	var cursor uint64
	errEnough := errors.New("enough")
	read := func(n int) {
		err := c.Events(context.Background(), cursor, func(e Event) error {
			got = append(got, e.SMS.ID)
			cursor = e.Seq
			if len(got) == n {
				return errEnough
			}
			return nil
		})
		if err != errEnough {
			t.Fatalf("stream ended: %v", err)
		}
	}
	read(2)
	f.add(Event{Type: EventSMSIn, SMS: &InboundSMS{ID: "m3"}})
	go func() {
		time.Sleep(100 * time.Millisecond)
		f.add(Event{Type: EventNotice, Notice: &Notice{Kind: "modem"}})
		f.add(Event{Type: EventSMSIn, SMS: &InboundSMS{ID: "m4"}})
	}()
	got2 := []string{}
	_ = c.Events(context.Background(), cursor, func(e Event) error {
		if e.SMS != nil {
			got2 = append(got2, e.SMS.ID)
		}
		if len(got2) == 3 {
			return errEnough
		}
		return nil
	})
	all := append(got, got2...)
	if fmt.Sprint(all) != "[m0 m1 m2 m3 m4]" {
		t.Fatalf("read %v, want each message once in order", all)
	}
	in, err := c.Inbox(context.Background(), 0, 2)
	if err != nil || len(in.Messages) != 2 || in.Next != 2 {
		t.Fatalf("inbox page: %+v, %v", in, err)
	}
	in, err = c.Inbox(context.Background(), in.Next, 0)
	if err != nil || len(in.Messages) != 3 || in.Messages[2].SMS.ID != "m4" || in.Next != 6 {
		t.Fatalf("inbox rest: %+v, %v", in, err)
	}
}

// Slow clients, floods and stuck handlers get refusals or are cut off;
// they do not take the server down.
func TestAbuse(t *testing.T) {
	f := newFake()
	path, c := serve(t, f, func(c *Config) { c.MaxInFlight = 4; c.MaxStreams = 2 })

	// A client that sends half a header is cut off.
	slow, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := slow.Write([]byte("GET /v1/status HTTP/1.1\r\nHost: a\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = slow.SetReadDeadline(time.Now().Add(15 * time.Second))
	start := time.Now()
	if _, err := io.ReadAll(slow); err != nil {
		t.Fatalf("slow client: %v, want the server to close", err)
	}
	t.Logf("slow client cut off after %s", time.Since(start).Round(time.Millisecond))

	// Handlers that hang fill the in-flight bound; more requests are
	// answered 503 at once, and the rest works once they return.
	f.hold = make(chan struct{})
	var wg sync.WaitGroup
	codes := make(chan int, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _ := raw(t, path, "POST", "/v1/sms", strings.NewReader(fmt.Sprintf(`{"to":"5432145","text":"m%d","idempotency_key":"k%d"}`, i, i)))
			codes <- code
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(codes) < 96 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(f.hold)
	wg.Wait()
	close(codes)
	n := map[int]int{}
	for c := range codes {
		n[c]++
	}
	if n[201]+n[503] != 100 || n[201] < 4 || n[503] == 0 {
		t.Fatalf("100 concurrent sends: %v, want 201s and 503s only", n)
	}
	t.Logf("100 concurrent sends with 4 in flight: %v", n)

	// Streams are bounded too.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 2 {
		go func() { _ = c.Events(ctx, 0, func(Event) error { return nil }) }()
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		code := streamStatus(t, c, "/v1/events")
		if code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("third stream: %d, want 503", code)
		}
	}
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A stream whose reader stops reading is dropped; the server does not
// wait on it forever.
func TestStreamReaderThatDoesNotRead(t *testing.T) {
	f := newFake()
	big := strings.Repeat("x", 60000)
	for range 100 {
		f.add(Event{Type: EventSMSIn, SMS: &InboundSMS{ID: "m", Text: big}})
	}
	path, c := serve(t, f, func(c *Config) { c.MaxStreams = 1 })
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /v1/events HTTP/1.1\r\nHost: a\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	// The only stream slot is taken until the server gives up on the
	// reader.
	start := time.Now()
	for {
		if streamStatus(t, c, "/v1/events?after=100") == http.StatusOK {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatal("the stream of a reader that does not read was never dropped")
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("non-reading stream dropped after %s", time.Since(start).Round(100*time.Millisecond))
}

func TestAPIExamples(t *testing.T) {
	doc, err := os.ReadFile("API.md")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)<!-- example: ([a-z-]+) -->\n```json\n(.*?)\n```")
	strict := func(payload string, v any) error {
		dec := json.NewDecoder(strings.NewReader(payload))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			return err
		}
		if dec.More() {
			return fmt.Errorf("more than one value")
		}
		return nil
	}
	seen := map[string]bool{}
	for _, m := range block.FindAllStringSubmatch(string(doc), -1) {
		kind, payload := m[1], m[2]
		seen[kind] = true
		var err error
		switch kind {
		case "status":
			// The agent's own test decodes it against its status type.
			if !json.Valid([]byte(payload)) {
				err = fmt.Errorf("invalid JSON")
			}
		case "error":
			err = strict(payload, new(Error))
		case "sms-request":
			_, err = DecodeSMSRequest([]byte(payload))
		case "sms-queued":
			err = strict(payload, new(SMSQueued))
		case "sms-status":
			err = strict(payload, new(SMSStatus))
		case "events":
			sc := bufio.NewScanner(strings.NewReader(payload))
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var e Event
				if err = strict(sc.Text(), &e); err != nil {
					break
				}
				if e.V != V || e.Type == "" || (e.SMS == nil && e.Result == nil && e.Notice == nil && e.Gap == nil) {
					err = fmt.Errorf("event without version, type or body: %s", sc.Text())
					break
				}
			}
		case "inbox":
			err = strict(payload, new(Inbox))
		case "at-request":
			_, err = DecodeATRequest([]byte(payload))
		case "at-response":
			err = strict(payload, new(ATResponse))
		case "recover-request":
			_, err = DecodeRecoverRequest([]byte(payload))
		case "recover-queued":
			err = strict(payload, new(RecoverQueued))
		default:
			t.Errorf("unknown example kind %q", kind)
		}
		if err != nil {
			t.Errorf("%s example: %v\n%s", kind, err, payload)
		}
	}
	for _, k := range []string{"status", "error", "sms-request", "sms-queued", "sms-status", "events", "inbox", "at-request", "at-response", "recover-request", "recover-queued"} {
		if !seen[k] {
			t.Errorf("API.md has no %s example", k)
		}
	}
}

// Stopping the server ends open event streams at once rather than
// waiting out the shutdown's grace period.
func TestShutdownEndsStreams(t *testing.T) {
	f := newFake()
	dir := t.TempDir()
	s, err := Listen(Config{Backend: f, Path: filepath.Join(dir, SocketName)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	c := NewClient(filepath.Join(dir, SocketName))
	streamErr := make(chan error, 1)
	opened := make(chan struct{})
	f.add(Event{Type: EventNotice, Notice: &Notice{Kind: "modem"}})
	go func() {
		streamErr <- c.Events(context.Background(), 0, func(Event) error {
			close(opened)
			return nil
		})
	}()
	<-opened
	start := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d >= 2*time.Second {
		t.Errorf("shutdown with a stream open took %s: it waited out the grace period for the stream", d)
	}
	if err := <-streamErr; err == nil {
		t.Error("stream did not end")
	}
}
