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

// Handler receives an unsolicited result code: its line, then the line
// that belongs to it for the two-line codes of 3GPP TS 27.005 (3.4.1). Handlers run one at a time on a goroutine of
// their own, so they may issue commands.
type Handler func(lines []string)

// urcQueue bounds the URCs waiting for their handlers. URCs beyond it are
// logged and dropped rather than stalling the reader, which would stall
// every command.
const urcQueue = 256

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
	// dirty means a command timed out and its answer may still come; stale
	// holds that command's prefixes so a late "+CREG: 2,1" is not taken for
	// a "+CREG: <stat>,<lac>" URC.
	dirty bool
	stale []string
	// settling is set while a completed fence waits for silence; unsettled
	// records that a final or a fence answer arrived meanwhile.
	settling, unsettled bool
	err                 error
	// cancelPrompt asks the reader to send ESC: a "> " arrived that no
	// SMS command is waiting for, so the modem would take what we send next
	// as message text.
	cancelPrompt bool

	closed    chan struct{}
	closeOnce sync.Once
}

type indication struct {
	prefix  string
	h       Handler
	removed bool // guarded by AT.mu; queued URCs skip a removed handler
}

type request struct {
	cmd      string
	echo     string
	body     *string // nil unless the command prompts for a body
	prefixes []string
	timeout  time.Duration
	fence    string // information prefix that proves the fence's own answer

	fenceSeen bool
	echoSeen  bool
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
	a.dirty = a.cfg.initialFence
	a.port, a.rw = rw, rw
	if a.cfg.trace != nil {
		a.rw = &tracer{rw: rw, log: a.cfg.trace}
	}
	a.urcs = make(chan urc, urcQueue)
	go a.readLoop()
	go a.dispatchLoop()
	return a
}

// AddIndication registers h for unsolicited lines starting with prefix
// ("+CMTI", "+CEREG:", "RDY"). A "+XXX" prefix without a colon matches
// "+XXX:" only. Several handlers may watch one prefix; each gets every
// match, in registration order. The returned function removes h: once it
// has returned, h is not called again, except for a call already running.
func (a *AT) AddIndication(prefix string, h Handler) (remove func()) {
	ind := &indication{prefix: normPrefix(prefix), h: h}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.handlers = append(a.handlers, ind)
	return func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		ind.removed = true
		for i, x := range a.handlers {
			if x == ind {
				a.handlers = append(a.handlers[:i:i], a.handlers[i+1:]...)
				return
			}
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
	// Shut down first, so the read error that closing the port causes is
	// not reported as the port failing.
	a.shutdown(errors.New("closed by owner"), false)
	if c, ok := a.port.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

func (a *AT) shutdown(cause error, failed bool) {
	a.closeOnce.Do(func() {
		a.mu.Lock()
		a.err = fmt.Errorf("%w: %w", ErrClosed, cause)
		if a.cur != nil {
			a.cur.finish(a.err)
			a.cur = nil
		}
		a.mu.Unlock()
		close(a.closed)
		if failed {
			a.cfg.log.Warn("AT port failed", "cause", cause)
		}
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
		return nil, fmt.Errorf("%s: invalid SMS body %q: must be one non-empty line without Ctrl-Z or ESC", logCmd(cmd), logCmd(body))
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
		return nil, fmt.Errorf("%s: %w", logCmd(cmd), a.Err())
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: waiting for the port: %w", logCmd(cmd), ctx.Err())
	}
	defer func() { <-a.sem }()
	// select chooses at random among ready cases: a free port must not
	// carry a command whose context had already ended.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: waiting for the port: %w", logCmd(cmd), err)
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
	a.mu.Lock()
	dirty := a.dirty
	a.mu.Unlock()
	if dirty {
		if err := a.fence(ctx, min(fenceTimeout, r.timeout)); err != nil {
			return nil, fmt.Errorf("%s: resynchronising after an earlier timeout: %w", logCmd(cmd), err)
		}
	}
	info, err := a.exchange(ctx, r)
	if err != nil {
		return info, fmt.Errorf("%s: %w", logCmd(cmd), err)
	}
	return info, nil
}

// fence resynchronises the line after a timeout. It sends a command with a
// recognisable answer and discards everything before that answer: the modem
// answers in order, so what precedes the fence's information line belongs
// to commands that timed out. The matched line may itself be the late
// answer of an earlier fence that timed out, so the fence then waits for
// the line to settle: a final result or another fence answer arriving
// within the settle time means the modem was still answering old commands,
// and the fence is repeated. Commands the modem never answered (it was
// busy or rebooting) leave no trace and need no counting.
func (a *AT) fence(ctx context.Context, timeout time.Duration) error {
	const tries = 5
	for try := 1; ; try++ {
		r := &request{
			cmd:      fenceCmd,
			echo:     strings.ToUpper(fenceCmd),
			prefixes: []string{fencePrefix},
			fence:    fencePrefix,
			timeout:  timeout,
		}
		if _, err := a.exchange(ctx, r); err != nil {
			a.mu.Lock()
			a.settling = false
			a.mu.Unlock()
			return err
		}
		t := time.NewTimer(fenceSettle)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		a.mu.Lock()
		a.settling = false
		settled := !a.unsettled && ctx.Err() == nil
		if settled {
			a.dirty, a.stale = false, nil
		}
		a.mu.Unlock()
		switch {
		case settled:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case try == tries:
			return fmt.Errorf("%w: the modem kept answering old commands after %d fences", ErrTimeout, tries)
		}
		a.cfg.log.Debug("AT fence matched a late answer, fencing again", "try", try)
	}
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

	line := r.cmd + "\r"
	if r.fence != "" {
		// A leading CR ends whatever half a command line the modem may
		// hold (from a writer that died mid-line); an empty line is
		// ignored by V.250 and answers nothing. ESC before it closes an
		// SMS prompt left open by a writer that died between AT+CMGS and
		// its PDU, which would otherwise swallow every command as message
		// text; what the modem answers to it (OK, or ERROR at the command
		// line) comes before the fence's answer and is discarded with the
		// other stale lines.
		line = "\x1b\r" + line
	}
	if err := a.write(line); err != nil {
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
	// Select done once more, under the lock the reader finishes requests
	// with: the final may have raced the deadline.
	select {
	case err := <-r.done:
		a.mu.Unlock()
		return r.info, err
	default:
	}
	a.dirty = true
	if r.fence == "" {
		a.stale = append(a.stale, r.prefixes...)
	}
	a.mu.Unlock()
	if r.body != nil && !inBody {
		// Without ESC the modem would take the next command as message text.
		_ = a.write("\x1b")
	}
	err := context.Cause(ctx)
	if errors.Is(err, ErrTimeout) {
		a.cfg.log.Warn("AT command timed out", "cmd", logCmd(r.cmd), "len", len(r.cmd), "after", r.timeout)
		err = fmt.Errorf("%w (%s)", ErrTimeout, r.timeout)
	}
	return r.info, err
}

func (a *AT) write(s string) error {
	if _, err := io.WriteString(a.rw, s); err != nil {
		a.shutdown(fmt.Errorf("write: %w", err), true)
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

// logCmd shortens a command for a log line: a command may be as long as
// the caller makes it (100,000 characters were seen), a log line should
// not be.
func logCmd(cmd string) string {
	const max = 64
	if len(cmd) <= max {
		return cmd
	}
	return strings.ToValidUTF8(cmd[:max], "") + "…"
}
