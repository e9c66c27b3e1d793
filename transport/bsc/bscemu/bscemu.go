// Package bscemu simulates the operator's Business Smart Connect platform
// for bench use and tests: the OAuth2 token endpoint, the SIM management
// API, MT SMS into simulated modems, MO SMS and delivery reports forwarded
// to an application URL, network resets, quotas, and injectable faults.
package bscemu

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"cellagent/transport/bsc"
)

// Device is a simulated modem with a SIM, registered per ICCID. The lead's
// BG96 simulator implements it; bscemu never imports the modem packages.
type Device interface {
	ICCID() string
	// DeliverText hands an MT SMS to the modem (it then shows +CMTI etc.).
	DeliverText(from, text string) error
	// NetworkReset makes the modem deregister and re-register, as a
	// network-side connectivity reset does.
	NetworkReset()
}

// Config configures a Server. Zero values take the defaults noted.
type Config struct {
	// Users maps API usernames to passwords for the token endpoint's Basic
	// auth. Use ParseUserSpec to fill it from "user:passwordfile" flags.
	Users map[string]string
	SIMs  []SIMConfig
	// AppURL receives MO SMS (POST) and delivery reports (PATCH), like the
	// platform's SMS forwarder; empty disables forwarding.
	AppURL    string
	AppClient *http.Client // default: 10 s timeout, system roots
	// AppHeader is sent with every forward: the application's credentials
	// (a shared-secret header or Authorization), which the operator
	// leaves to the customer (../OPERATOR.md §4).
	AppHeader http.Header

	OrgID         int64         // default 1234
	TokenLifetime time.Duration // default 3599 s (the expires_in of ../OPERATOR.md §1)
	ResetDelay    time.Duration // queue-to-reset delay; default 2 s
	RetryBase     time.Duration // forwarder back-off start; default 1 s
	RetryMax      time.Duration // forwarder back-off ceiling; default 60 s
	QueueSize     int           // forwarder and MT queues; default 256

	// Control enables the unauthenticated /_sim/ endpoints for fault
	// injection from scripts; keep it off on shared networks.
	Control bool

	// Fields for a runnable simulator (ServerTLS).
	Listen        string // e.g. 127.0.0.1:8443
	TLSCertFile   string // PEM; with TLSKeyFile
	TLSKeyFile    string
	TLSSelfSigned bool // generate a certificate for Listen's host

	Logger *slog.Logger
}

// SIMConfig describes one simulated SIM.
type SIMConfig struct {
	ICCID, IMSI, MSISDN, Label string
	Status                     string // default ENABLED
	EndpointID                 int64  // forwarder endpoint.id; default 1000+index
	DataBytes                  int64  // data allowance; default 500 MB
	SMS                        int64  // SMS allowance; default 250
}

// Server is the simulated platform. Create with New, serve with Handler or
// Start, and always Close.
type Server struct {
	cfg  Config
	log  *slog.Logger
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	outq chan outbound
	mtq  chan mtJob

	mu      sync.Mutex
	sims    map[string]*simState
	order   []string
	devices map[string]Device
	tokens  map[string]time.Time
	faults  []*Fault
	nTokens int
	nAPI    int
	nextID  int64
	httpSrv *http.Server
	baseURL string
	mux     *http.ServeMux
	closed  bool
}

// New builds a simulator and starts its background workers.
func New(cfg Config) (*Server, error) {
	if cfg.OrgID == 0 {
		cfg.OrgID = 1234
	}
	if cfg.TokenLifetime <= 0 {
		cfg.TokenLifetime = 3599 * time.Second
	}
	if cfg.ResetDelay <= 0 {
		cfg.ResetDelay = 2 * time.Second
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = time.Second
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = time.Minute
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 256
	}
	if cfg.AppClient == nil {
		cfg.AppClient = &http.Client{Timeout: 10 * time.Second}
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		outq:    make(chan outbound, cfg.QueueSize),
		mtq:     make(chan mtJob, cfg.QueueSize),
		sims:    map[string]*simState{},
		devices: map[string]Device{},
		tokens:  map[string]time.Time{},
		nextID:  1,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for i, sc := range cfg.SIMs {
		if err := bsc.ValidateICCID(sc.ICCID); err != nil {
			return nil, fmt.Errorf("bscemu: SIM %d: %w", i+1, err)
		}
		if _, dup := s.sims[sc.ICCID]; dup {
			return nil, fmt.Errorf("bscemu: SIM %s configured twice", sc.ICCID)
		}
		if sc.Status == "" {
			sc.Status = "ENABLED"
		}
		if sc.EndpointID == 0 {
			sc.EndpointID = 1000 + int64(i)
		}
		if sc.DataBytes <= 0 {
			sc.DataBytes = 500 << 20
		}
		if sc.SMS <= 0 {
			sc.SMS = 250
		}
		s.sims[sc.ICCID] = newSIMState(sc, time.Now())
		s.order = append(s.order, sc.ICCID)
	}
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.mux = s.routes()
	s.wg.Add(2)
	go s.forwardLoop()
	go s.mtLoop()
	return s, nil
}

// Handler serves the platform API (and /_sim/ when Control is set).
func (s *Server) Handler() http.Handler { return s.mux }

// Start listens on addr (TLS when tlsCfg is non-nil) and serves in the
// background. Use URL for the base URL clients should use.
func (s *Server) Start(addr string, tlsCfg *tls.Config) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("bscemu: listen %s: %w", addr, err)
	}
	scheme := "http"
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
		scheme = "https"
	}
	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	if s.closed || s.httpSrv != nil {
		s.mu.Unlock()
		ln.Close()
		return errors.New("bscemu: Start: server closed or already started")
	}
	s.httpSrv = srv
	s.baseURL = scheme + "://" + ln.Addr().String()
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("bscemu: serve", "err", err)
		}
	}()
	s.log.Info("bscemu: listening", "url", s.baseURL)
	return nil
}

// URL is the base URL after Start, e.g. https://127.0.0.1:40123.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.baseURL
}

// Close stops the listener, pending resets and the forwarder (undelivered
// MO SMS and reports are dropped, as the simulation ends).
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	srv := s.httpSrv
	s.mu.Unlock()
	s.stop()
	var err error
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err = srv.Shutdown(ctx); err != nil {
			err = fmt.Errorf("bscemu: shutdown: %w", err)
			srv.Close()
		}
	}
	s.wg.Wait()
	return err
}

// Register wires a simulated modem to its SIM; buffered MT SMS are
// delivered to it now.
func (s *Server) Register(d Device) error {
	iccid := d.ICCID()
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.sims[iccid]
	if !ok {
		return fmt.Errorf("bscemu: Register: no SIM %s configured", iccid)
	}
	s.devices[iccid] = d
	for _, m := range st.mt {
		if m.status == smsBuffered {
			s.queueMTLocked(iccid, m.id)
		}
	}
	return nil
}

// UseData records bytes of traffic by the SIM and lowers its data quota,
// logging threshold events as the platform would.
func (s *Server) UseData(iccid string, bytes int64) error {
	if bytes < 0 {
		return fmt.Errorf("bscemu: UseData: negative byte count %d", bytes)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.sims[iccid]
	if !ok {
		return fmt.Errorf("bscemu: UseData: no SIM %s", iccid)
	}
	st.consume(bytes, time.Now())
	return nil
}

// TokenRequests counts token endpoint calls, successful or not.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nTokens
}

// APIRequests counts management API calls (everything but the token).
func (s *Server) APIRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nAPI
}

// SIM returns a snapshot of one SIM's state.
func (s *Server) SIM(iccid string) (SIMState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.sims[iccid]
	if !ok {
		return SIMState{}, false
	}
	return st.snapshot(), true
}

// RevokeTokens invalidates every issued token at once.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	clear(s.tokens)
	s.mu.Unlock()
}

// ExpireTokensAfter shortens every issued token's life to d from now.
func (s *Server) ExpireTokensAfter(d time.Duration) {
	s.mu.Lock()
	limit := time.Now().Add(d)
	for t, exp := range s.tokens {
		if exp.After(limit) {
			s.tokens[t] = limit
		}
	}
	s.mu.Unlock()
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
