// Package at is an AT command engine for cellular modems over any
// io.ReadWriter (a serial port in production, a pseudo-terminal in tests).
//
// One goroutine reads and splits the stream; commands are serialised, one in
// flight at a time. A line belongs to the running command only if it is its
// echo, its final result code, a line with the command's own "+XXX:" prefix,
// or a line without a "+XXX:" prefix that is not a known bare-word URC. Every
// other line is unsolicited and goes, in arrival order, to the handler
// registered for its prefix, so a URC never leaks into a command's answer.
package at

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Handler receives an unsolicited result code: its line, then the trailing
// lines registered with it. Handlers run one at a time on a goroutine of
// their own, so they may issue commands.
type Handler func(lines []string)

// AT is the engine. Build it with New; it is safe for concurrent use.
type AT struct {
	port io.ReadWriter
	rw   io.ReadWriter // port, or a tracer around it
	cfg  config
	sem  chan struct{} // holds the right to have a command in flight
	urcs chan urc

	mu       sync.Mutex
	cur      *request
	handlers []*indication
	// trailing collects the lines that still belong to a multi-line URC.
	trailing     []string
	trailingWant int
	trailingTo   *indication
	dirty        bool // a command timed out; its answer may still come
	err          error

	closed    chan struct{}
	closeOnce sync.Once
}

type indication struct {
	prefix   string
	trailing int
	h        Handler
}

type request struct {
	cmd      string
	echo     string
	body     *string // nil unless the command prompts for a body
	prefixes []string
	timeout  time.Duration
	fence    string // information prefix that proves the fence's own answer

	fenceSeen bool
	info      []string
	prompt    chan struct{}
	done      chan error
}

// New starts an engine reading rw. The caller keeps ownership of rw, but
// Close closes it when it implements io.Closer, which also ends the reader.
func New(rw io.ReadWriter, opts ...Option) *AT {
	a := &AT{
		cfg:    defaultConfig(),
		sem:    make(chan struct{}, 1),
		closed: make(chan struct{}),
	}
	for _, o := range opts {
		o(&a.cfg)
	}
	a.port, a.rw = rw, rw
	if a.cfg.trace != nil {
		a.rw = &tracer{rw: rw, log: a.cfg.trace}
	}
	a.urcs = make(chan urc, a.cfg.queueLen)
	for _, p := range a.cfg.twoLine {
		a.handlers = append(a.handlers, &indication{prefix: p, trailing: 1})
	}
	go a.readLoop()
	go a.dispatchLoop()
	return a
}

// AddIndication registers h for unsolicited lines starting with prefix
// ("+CMTI", "+CEREG:", "RDY"). A "+XXX" prefix without a colon matches
// "+XXX:" only. Registering a prefix again replaces its handler.
func (a *AT) AddIndication(prefix string, h Handler, opts ...IndicationOption) {
	ind := &indication{prefix: normPrefix(prefix), h: h}
	for _, p := range a.cfg.twoLine {
		if p == ind.prefix {
			ind.trailing = 1
		}
	}
	for _, o := range opts {
		o(ind)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, old := range a.handlers {
		if old.prefix == ind.prefix {
			a.handlers[i] = ind
			return
		}
	}
	a.handlers = append(a.handlers, ind)
}

// RemoveIndication drops the handler for prefix. Multi-line URCs keep
// consuming their trailing lines so these cannot be mistaken for others.
func (a *AT) RemoveIndication(prefix string) {
	prefix = normPrefix(prefix)
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ind := range a.handlers {
		if ind.prefix == prefix {
			ind.h = nil
		}
	}
}

func normPrefix(p string) string {
	if strings.HasPrefix(p, "+") && !strings.HasSuffix(p, ":") {
		return p + ":"
	}
	return p
}

// Closed is closed when the port failed or Close was called. Err then says
// why.
func (a *AT) Closed() <-chan struct{} { return a.closed }

// Err returns the reason the engine closed, or nil while it runs.
func (a *AT) Err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// Close stops the engine and closes the port if it is an io.Closer. Pending
// and later commands fail with ErrClosed.
func (a *AT) Close() error {
	var err error
	if c, ok := a.port.(io.Closer); ok {
		err = c.Close()
	}
	a.shutdown(errors.New("closed by owner"))
	return err
}

func (a *AT) shutdown(cause error) {
	a.closeOnce.Do(func() {
		a.mu.Lock()
		a.err = fmt.Errorf("%w: %w", ErrClosed, cause)
		if a.cur != nil {
			a.cur.finish(a.err)
			a.cur = nil
		}
		a.mu.Unlock()
		close(a.closed)
		a.cfg.log.Warn("AT port closed", "cause", cause)
	})
}

// Command sends cmd (the whole command, e.g. "AT+CSQ") and waits for its
// final result code. It returns the information lines, without echo, blank
// lines or the final result. Failures are ErrError, *CMEError, *CMSError,
// *ResultError, ErrTimeout, ErrClosed, or the context's error, wrapped with
// the command.
func (a *AT) Command(ctx context.Context, cmd string, opts ...CommandOption) ([]string, error) {
	return a.run(ctx, cmd, nil, opts)
}

// SMSCommand sends a command that prompts for a body with "> " (AT+CMGS,
// AT+CMGW), then the body terminated by Ctrl-Z, and waits for the final
// result. On timeout or cancellation while the modem waits for the body, it
// sends ESC so the modem abandons the message rather than swallowing the
// next command as text.
func (a *AT) SMSCommand(ctx context.Context, cmd, body string, opts ...CommandOption) ([]string, error) {
	if body == "" || strings.ContainsAny(body, "\r\n\x1a\x1b") {
		return nil, fmt.Errorf("%s: invalid SMS body %q: must be one non-empty line without Ctrl-Z or ESC", cmd, body)
	}
	return a.run(ctx, cmd, &body, opts)
}

func (a *AT) run(ctx context.Context, cmd string, body *string, opts []CommandOption) ([]string, error) {
	cmd = strings.TrimSpace(cmd)
	if cmd == "" || strings.ContainsAny(cmd, "\r\n\x1a\x1b") {
		return nil, fmt.Errorf("at: invalid command %q", cmd)
	}
	select {
	case a.sem <- struct{}{}:
	case <-a.closed:
		return nil, fmt.Errorf("%s: %w", cmd, a.Err())
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: waiting for the port: %w", cmd, ctx.Err())
	}
	defer func() { <-a.sem }()

	a.mu.Lock()
	dirty := a.dirty
	a.mu.Unlock()
	if dirty {
		if err := a.fence(ctx); err != nil {
			return nil, fmt.Errorf("%s: resynchronising after an earlier timeout: %w", cmd, err)
		}
	}
	r := &request{
		cmd:      cmd,
		echo:     strings.ToUpper(cmd),
		body:     body,
		prefixes: derivePrefixes(cmd),
		timeout:  a.cfg.timeoutFor(cmd),
	}
	for _, o := range opts {
		o(r)
	}
	info, err := a.exchange(ctx, r)
	if err != nil {
		return info, fmt.Errorf("%s: %w", cmd, err)
	}
	return info, nil
}

// fence sends a command with a recognisable answer and discards everything
// before that answer: the modem answers in order, so whatever final result
// precedes the fence's information line belongs to the command that timed
// out.
func (a *AT) fence(ctx context.Context) error {
	r := &request{
		cmd:      a.cfg.fenceCmd,
		echo:     strings.ToUpper(a.cfg.fenceCmd),
		prefixes: []string{a.cfg.fencePrefix},
		fence:    a.cfg.fencePrefix,
		timeout:  a.cfg.fenceTimeout,
	}
	if _, err := a.exchange(ctx, r); err != nil {
		return err
	}
	a.mu.Lock()
	a.dirty = false
	a.mu.Unlock()
	return nil
}

func (a *AT) exchange(ctx context.Context, r *request) ([]string, error) {
	r.done = make(chan error, 1)
	if r.body != nil {
		r.prompt = make(chan struct{}, 1)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, r.timeout, ErrTimeout)
	defer cancel()

	a.mu.Lock()
	if a.err != nil {
		err := a.err
		a.mu.Unlock()
		return nil, err
	}
	a.cur = r
	a.mu.Unlock()

	if err := a.write(r.cmd + "\r"); err != nil {
		return nil, err
	}
	inBody := false
	for {
		select {
		case err := <-r.done:
			return r.info, err
		case <-r.prompt:
			if err := a.write(*r.body + "\x1a"); err != nil {
				return nil, err
			}
			inBody = true
			r.prompt = nil
		case <-ctx.Done():
			return a.abandon(ctx, r, inBody)
		}
	}
}

// abandon gives up on r. The modem may still answer it later, so the
// engine is marked dirty and the next command is fenced.
func (a *AT) abandon(ctx context.Context, r *request, inBody bool) ([]string, error) {
	a.mu.Lock()
	if a.cur == r {
		a.cur = nil
	}
	a.dirty = true
	a.mu.Unlock()
	// Select done once more: the final may have raced the deadline.
	select {
	case err := <-r.done:
		a.mu.Lock()
		a.dirty = false
		a.mu.Unlock()
		return r.info, err
	default:
	}
	if r.body != nil && !inBody {
		// Without ESC the modem would take the next command as message text.
		_ = a.write("\x1b")
	}
	err := context.Cause(ctx)
	if errors.Is(err, ErrTimeout) {
		a.cfg.log.Warn("AT command timed out", "cmd", r.cmd, "after", r.timeout)
		err = fmt.Errorf("%w (%s)", ErrTimeout, r.timeout)
	}
	return r.info, err
}

func (a *AT) write(s string) error {
	if _, err := io.WriteString(a.rw, s); err != nil {
		a.shutdown(fmt.Errorf("write: %w", err))
		return a.Err()
	}
	return nil
}

func (r *request) finish(err error) {
	select {
	case r.done <- err:
	default:
	}
}

// derivePrefixes gives the information prefix of an extended command:
// "AT+CSQ" → "+CSQ:", "AT+CREG?" → "+CREG:". Basic commands (ATI, ATE0)
// answer with bare lines only.
func derivePrefixes(cmd string) []string {
	s := strings.ToUpper(cmd)
	if !strings.HasPrefix(s, "AT") || len(s) < 4 || (s[2] != '+' && s[2] != '$' && s[2] != '^') {
		return nil
	}
	end := strings.IndexAny(s[3:], "=?")
	name := s[2:]
	if end >= 0 {
		name = s[2 : 3+end]
	}
	return []string{name + ":"}
}
