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
	"net/url"
	"os"
	"strconv"
	"time"
)

// SocketName is the socket's name in the agent's runtime directory.
const SocketName = "api.sock"

// Client talks to an agent's socket.
type Client struct {
	path string
	http *http.Client
}

// NewClient returns a client of the socket at path; nothing is dialled
// until the first call.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConns:    2,
		IdleConnTimeout: 30 * time.Second,
	}
	return &Client{path: path, http: &http.Client{Transport: tr}}
}

// Path is the socket the client talks to.
func (c *Client) Path() string { return c.path }

// APIError is an answer other than 2xx.
type APIError struct {
	Code    int
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("agent answered %d %s: %s", e.Code, http.StatusText(e.Code), e.Message)
}

// Status returns the agent's status view, as JSON.
func (c *Client) Status(ctx context.Context) ([]byte, error) {
	return c.do(ctx, http.MethodGet, "/v1/status", nil, nil)
}

// SendSMS queues a message; the answer means it is on disk.
func (c *Client) SendSMS(ctx context.Context, r SMSRequest) (SMSQueued, error) {
	var q SMSQueued
	_, err := c.do(ctx, http.MethodPost, "/v1/sms", r, &q)
	return q, err
}

// SMS returns the state of a queued message.
func (c *Client) SMS(ctx context.Context, id string) (SMSStatus, error) {
	var s SMSStatus
	_, err := c.do(ctx, http.MethodGet, "/v1/sms/"+url.PathEscape(id), nil, &s)
	return s, err
}

// Inbox returns up to limit MT messages after the cursor.
func (c *Client) Inbox(ctx context.Context, after uint64, limit int) (Inbox, error) {
	var in Inbox
	q := url.Values{"after": {strconv.FormatUint(after, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/inbox?"+q.Encode(), nil, &in)
	return in, err
}

// AT runs one command through the agent's engine.
func (c *Client) AT(ctx context.Context, r ATRequest) (ATResponse, error) {
	var a ATResponse
	_, err := c.do(ctx, http.MethodPost, "/v1/at", r, &a)
	return a, err
}

// Recover asks for a ladder step.
func (c *Client) Recover(ctx context.Context, step string) (RecoverQueued, error) {
	var q RecoverQueued
	_, err := c.do(ctx, http.MethodPost, "/v1/recover", RecoverRequest{Step: step}, &q)
	return q, err
}

// Events streams the feed after the cursor to fn until ctx ends, the
// stream breaks or fn returns an error. A caller resumes with the Seq of
// the last record fn took.
func (c *Client) Events(ctx context.Context, after uint64, fn func(Event) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/v1/events?after="+strconv.FormatUint(after, 10), nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.explain(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return apiError(resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("localapi: event: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) ([]byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://agent"+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.explain(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, apiError(resp)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("localapi: reading the answer: %w", err)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return nil, fmt.Errorf("localapi: answer to %s %s: %w", method, path, err)
		}
	}
	return b, nil
}

// explain names the socket in transport errors, and the fix for the
// common one.
func (c *Client) explain(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("agent socket %s: %w (join the socket's group, e.g. cellagent)", c.path, err)
	}
	return fmt.Errorf("agent socket %s: %w", c.path, err)
}

func apiError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e Error
	if json.Unmarshal(b, &e) != nil || e.Error == "" {
		e.Error = string(bytes.TrimSpace(b))
	}
	return &APIError{Code: resp.StatusCode, Message: e.Error}
}
