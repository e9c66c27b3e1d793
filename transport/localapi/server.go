package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"strconv"
	"sync"
	"time"
)

// Errors a Backend wraps so the server answers with the right status.
// Anything else is a 500 with the error's text.
var (
	ErrNotFound    = errors.New("not found")    // 404
	ErrForbidden   = errors.New("forbidden")    // 403: off, or refused without force
	ErrConflict    = errors.New("conflict")     // 409: a key reused for another message
	ErrLimited     = errors.New("rate limited") // 429: SMS or recovery budget spent
	ErrUnavailable = errors.New("unavailable")  // 503: queue full, modem down
	ErrTimeout     = errors.New("timed out")    // 504
)

// Backend is what the agent offers its local clients.
type Backend interface {
	// Status is the agent's status view as JSON, read now.
	Status(ctx context.Context) ([]byte, error)
	// SendSMS returns once the message is on disk.
	SendSMS(ctx context.Context, r SMSRequest) (SMSQueued, error)
	SMS(ctx context.Context, id string) (SMSStatus, error)
	// Events returns up to limit records with Seq greater than after.
	Events(ctx context.Context, after uint64, limit int) ([]Event, error)
	// WaitEvents returns when a record past after may exist, or ctx ends.
	WaitEvents(ctx context.Context, after uint64) error
	AT(ctx context.Context, r ATRequest) (ATResponse, error)
	Recover(ctx context.Context, step string) error
}

// Config configures a Server. Backend and Path are required.
type Config struct {
	Backend Backend
	// Path of the socket, e.g. /run/cellagent/api.sock.
	Path string
	// Group, when set, owns the socket; its members may use the API.
	Group  string
	Logger *slog.Logger
	// MaxInFlight bounds the requests being handled (default 16), and
	// MaxStreams the open /v1/events readers (default 8); more are
	// answered 503. MaxConns bounds open connections (default 64); more
	// wait in the listen backlog.
	MaxInFlight, MaxStreams, MaxConns int
	// Timeout bounds each request but streams and AT commands
	// (default 30 s).
	Timeout time.Duration
	// AfterQueued, when set, runs after an SMS is on disk and before the
	// client hears so: a test hook for dying in between.
	AfterQueued func()
}

// Server serves the API on its socket.
type Server struct {
	cfg      Config
	log      *slog.Logger
	ln       net.Listener
	srv      *http.Server
	inFlight chan struct{}
	streams  chan struct{}
}

// Socket mode: the owner (the agent) and the group.
const socketMode = 0o660

// Listen creates the socket, replacing a stale one, owned by cfg.Group
// with mode 0660.
func Listen(cfg Config) (*Server, error) {
	if cfg.Backend == nil || cfg.Path == "" {
		return nil, errors.New("localapi: Backend and Path are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 16
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = 8
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 64
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	gid := -1
	if cfg.Group != "" {
		g, err := user.LookupGroup(cfg.Group)
		if err != nil {
			return nil, fmt.Errorf("localapi: socket group: %w", err)
		}
		if gid, err = strconv.Atoi(g.Gid); err != nil {
			return nil, fmt.Errorf("localapi: group %s: gid %q", cfg.Group, g.Gid)
		}
	}
	// Only one agent runs per store, and it got here holding the store's
	// lock: a socket left behind is from a predecessor that died.
	if err := os.Remove(cfg.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("localapi: stale socket: %w", err)
	}
	ln, err := net.Listen("unix", cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("localapi: %w", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chown(cfg.Path, -1, gid); err != nil {
		ln.Close()
		return nil, fmt.Errorf("localapi: socket group: %w", err)
	}
	if err := os.Chmod(cfg.Path, socketMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("localapi: socket mode: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, ln: newLimitListener(ln, cfg.MaxConns),
		inFlight: make(chan struct{}, cfg.MaxInFlight), streams: make(chan struct{}, cfg.MaxStreams)}
	mux, paths := http.NewServeMux(), http.NewServeMux()
	for _, rt := range []struct {
		method, path string
		h            http.HandlerFunc
	}{
		{"GET", "/v1/status", s.limited(s.status)},
		{"POST", "/v1/sms", s.limited(s.sendSMS)},
		{"GET", "/v1/sms/{id}", s.limited(s.getSMS)},
		{"GET", "/v1/inbox", s.limited(s.inbox)},
		{"GET", "/v1/events", s.events},
		{"POST", "/v1/at", s.limited(s.at)},
		{"POST", "/v1/recover", s.limited(s.recover)},
	} {
		mux.HandleFunc(rt.method+" "+rt.path, rt.h)
		paths.HandleFunc(rt.path, http.NotFound)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if _, p := paths.Handler(r); p != "" {
			s.fail(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path))
			return
		}
		s.fail(w, http.StatusNotFound, fmt.Sprintf("no %s %s in API version %d (see API.md)", r.Method, r.URL.Path, V))
	})
	s.srv = &http.Server{
		Handler: mux,
		// A client that dribbles its headers or body is cut off rather
		// than holding a connection; the body deadline is per request.
		ReadHeaderTimeout: 5 * time.Second,
		// Idle connections count against MaxConns: they go soon.
		IdleTimeout:    10 * time.Second,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// Serve answers requests until ctx ends, then ends the event streams,
// lets the other requests in progress finish for up to two seconds and
// removes the socket.
func (s *Server) Serve(ctx context.Context) error {
	// Streams never go idle: they end with the requests' base context,
	// not by Shutdown's wait.
	base, endRequests := context.WithCancel(context.Background())
	defer endRequests()
	s.srv.BaseContext = func(net.Listener) context.Context { return base }
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("localapi: %w", err)
	case <-ctx.Done():
	}
	endRequests()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		s.srv.Close()
	}
	<-errc
	return nil
}

// limited runs h within the in-flight bound and the request timeout.
func (s *Server) limited(h func(http.ResponseWriter, *http.Request, []byte)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.inFlight <- struct{}{}:
			defer func() { <-s.inFlight }()
		default:
			s.fail(w, http.StatusServiceUnavailable, fmt.Sprintf("busy: %d requests in progress; retry", s.cfg.MaxInFlight))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
		defer cancel()
		r = r.WithContext(ctx)
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(10 * time.Second))
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.Timeout + 10*time.Second))
		var body []byte
		if r.Method == http.MethodPost {
			var err error
			body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
			var mbe *http.MaxBytesError
			switch {
			case errors.As(err, &mbe):
				s.fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", MaxBody))
				return
			case err != nil:
				s.fail(w, http.StatusBadRequest, "reading the body: "+err.Error())
				return
			}
		}
		h(w, r, body)
	}
}

func (s *Server) status(w http.ResponseWriter, r *http.Request, _ []byte) {
	b, err := s.cfg.Backend.Status(r.Context())
	if err != nil {
		s.backendError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func (s *Server) sendSMS(w http.ResponseWriter, r *http.Request, body []byte) {
	req, err := DecodeSMSRequest(body)
	if err != nil {
		s.backendError(w, err)
		return
	}
	q, err := s.cfg.Backend.SendSMS(r.Context(), req)
	if err != nil {
		s.backendError(w, err)
		return
	}
	if s.cfg.AfterQueued != nil {
		s.cfg.AfterQueued()
	}
	q.V = V
	code := http.StatusCreated
	if q.Duplicate {
		code = http.StatusOK
	}
	s.reply(w, code, q)
}

func (s *Server) getSMS(w http.ResponseWriter, r *http.Request, _ []byte) {
	id := r.PathValue("id")
	if err := ValidID(id); err != nil {
		s.backendError(w, err)
		return
	}
	st, err := s.cfg.Backend.SMS(r.Context(), id)
	if err != nil {
		s.backendError(w, err)
		return
	}
	st.V = V
	s.reply(w, http.StatusOK, st)
}

// maxPage bounds one page of the inbox and one read of the feed.
const maxPage = 500

func (s *Server) inbox(w http.ResponseWriter, r *http.Request, _ []byte) {
	after, limit, err := ParseCursor(r.URL.Query().Get("after"), r.URL.Query().Get("limit"), maxPage)
	if err != nil {
		s.backendError(w, err)
		return
	}
	out := Inbox{V: V, Messages: []Event{}, Next: after}
	// The feed interleaves other records; read on until the page is
	// full or the feed ends.
	for len(out.Messages) < limit {
		evs, err := s.cfg.Backend.Events(r.Context(), out.Next, maxPage)
		if err != nil {
			s.backendError(w, err)
			return
		}
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			if e.Type == EventSMSIn {
				e.V = V
				out.Messages = append(out.Messages, e)
			}
			out.Next = e.Seq
			if len(out.Messages) == limit {
				break
			}
		}
	}
	s.reply(w, http.StatusOK, out)
}

// events streams the feed as JSON lines from the cursor on, until the
// client goes away. A client that does not read is dropped when a write
// has waited ten seconds.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	select {
	case s.streams <- struct{}{}:
		defer func() { <-s.streams }()
	default:
		s.fail(w, http.StatusServiceUnavailable, fmt.Sprintf("busy: %d event streams open", s.cfg.MaxStreams))
		return
	}
	after, _, err := ParseCursor(r.URL.Query().Get("after"), "", maxPage)
	if err != nil {
		s.backendError(w, err)
		return
	}
	ctx := r.Context()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	write := func(e Event) bool {
		e.V = V
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		return enc.Encode(e) == nil
	}
	if rc.Flush() != nil {
		return
	}
	first := true
	for {
		evs, err := s.cfg.Backend.Events(ctx, after, maxPage)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("localapi: reading the feed", "err", err)
			}
			return
		}
		if first && len(evs) > 0 && evs[0].Seq > after+1 && after > 0 {
			if !write(Event{Type: EventGap, TS: time.Now().UTC(), Gap: &GapInfo{After: after, Next: evs[0].Seq}}) {
				return
			}
		}
		first = false
		for _, e := range evs {
			if !write(e) {
				return
			}
			after = e.Seq
		}
		if rc.Flush() != nil {
			return
		}
		if len(evs) == maxPage {
			continue
		}
		if err := s.cfg.Backend.WaitEvents(ctx, after); err != nil {
			return
		}
	}
}

func (s *Server) at(w http.ResponseWriter, r *http.Request, body []byte) {
	req, err := DecodeATRequest(body)
	if err != nil {
		s.backendError(w, err)
		return
	}
	// The command's own limit, not the API's: AT+COPS= may take 180 s.
	ctx := context.WithoutCancel(r.Context())
	var cancel context.CancelFunc
	if req.TimeoutMS > 0 {
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMS)*time.Millisecond+time.Second)
	} else {
		ctx, cancel = context.WithTimeout(ctx, MaxTimeoutMS*time.Millisecond+time.Second)
	}
	defer cancel()
	stop := context.AfterFunc(r.Context(), func() {
		if errors.Is(context.Cause(r.Context()), context.Canceled) {
			cancel()
		}
	})
	defer stop()
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(MaxTimeoutMS*time.Millisecond + 10*time.Second))
	resp, err := s.cfg.Backend.AT(ctx, req)
	if err != nil {
		s.backendError(w, err)
		return
	}
	resp.V = V
	if resp.Lines == nil {
		resp.Lines = []string{}
	}
	s.reply(w, http.StatusOK, resp)
}

func (s *Server) recover(w http.ResponseWriter, r *http.Request, body []byte) {
	req, err := DecodeRecoverRequest(body)
	if err != nil {
		s.backendError(w, err)
		return
	}
	if err := s.cfg.Backend.Recover(r.Context(), req.Step); err != nil {
		s.backendError(w, err)
		return
	}
	s.reply(w, http.StatusAccepted, RecoverQueued{V: V, Step: req.Step, Queued: true})
}

func (s *Server) reply(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.fail(w, http.StatusInternalServerError, "encoding the answer: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

func (s *Server) backendError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	for _, m := range []struct {
		err  error
		code int
	}{
		{ErrBadRequest, http.StatusBadRequest},
		{ErrNotFound, http.StatusNotFound},
		{ErrForbidden, http.StatusForbidden},
		{ErrConflict, http.StatusConflict},
		{ErrLimited, http.StatusTooManyRequests},
		{ErrUnavailable, http.StatusServiceUnavailable},
		{ErrTimeout, http.StatusGatewayTimeout},
		{context.DeadlineExceeded, http.StatusGatewayTimeout},
	} {
		if errors.Is(err, m.err) {
			code = m.code
			break
		}
	}
	if code == http.StatusInternalServerError {
		s.log.Warn("localapi: request failed", "err", err)
	}
	s.fail(w, code, err.Error())
}

func (s *Server) fail(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(Error{V: V, Error: msg})
	if code == http.StatusServiceUnavailable {
		// A refused client should not keep a connection slot.
		w.Header().Set("Connection", "close")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// limitListener holds at most n connections open; more wait in the
// kernel's backlog until one closes.
type limitListener struct {
	net.Listener
	sem chan struct{}
}

func newLimitListener(l net.Listener, n int) net.Listener {
	return &limitListener{Listener: l, sem: make(chan struct{}, n)}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.sem <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
