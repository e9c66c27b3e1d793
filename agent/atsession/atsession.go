// Package atsession keeps the agent's AT session with the modem alive: it opens
// the serial port, resynchronises the line, waits for the modem to be ready,
// runs the init script and hands the session out; when the port vanishes
// (USB re-enumeration after a power-cycle, a flaky cable) or the modem
// reboots behind the agent's back, it reopens and re-initialises with
// back-off. Everything that talks to the modem asks the link for the
// current session instead of holding a port of its own.
package atsession

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"cellagent/modem/at"
	"cellagent/modem/bg96"
	"cellagent/modem/clock"
	"cellagent/modem/port"
)

// Config configures a Link.
type Config struct {
	Path string
	Baud int
	// Open opens the port; default port.Open. The daemon wraps it to
	// resolve "auto" again on every attempt, as the tty name can change
	// after re-enumeration.
	Open func(path string, baud int) (io.ReadWriteCloser, error)
	Init bg96.InitConfig
	// Unlock, when set, is called on every new session once the modem
	// answers, to enter the SIM PIN if the SIM asks for it; after a
	// locked SIM held up the start, the wait for the modem starts again.
	Unlock func(ctx context.Context, c bg96.Commander) error
	// Setup, when set, runs after the init script on every new session,
	// as the network profile must be checked at every initialisation.
	// An error fails the session.
	Setup func(ctx context.Context, c bg96.Commander) error
	// ATOptions are added to every engine, e.g. a trace logger.
	ATOptions []at.Option
	// ReadyTimeout bounds the wait for start-up URCs and the init script
	// (default 120 s: RDY within ~30 s of power-on, then the SIM).
	ReadyTimeout time.Duration
	// MinBackoff and MaxBackoff bound the delay between attempts (default
	// 1 s and 1 min); it doubles per failed attempt, with jitter.
	MinBackoff, MaxBackoff time.Duration
	// OnChange is told about every session that comes up (s set) and
	// every one that goes down or fails to come up (err set). It runs on
	// the link's goroutine and must not block.
	OnChange func(s *Session, err error)
	Logger   *slog.Logger
	Now      func() time.Time
}

// Session is one initialised AT session.
type Session struct {
	AT       *at.AT
	Modem    *bg96.Modem
	Identity bg96.Identity // what could be read; check the fields used
	Seq      int           // 1 for the first session of this process
	Since    time.Time
}

// Keeper owns the port; see the package comment.
type Keeper struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	cur     *Session
	changed chan struct{}
	seq     int
}

// ErrDown is returned by Current when no session is up.
var ErrDown = errors.New("session: modem session is down")

// New prepares a link; Run does the work.
func New(cfg Config) *Keeper {
	if cfg.Open == nil {
		cfg.Open = port.Open
	}
	if cfg.Baud == 0 {
		cfg.Baud = port.DefaultBaud
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 120 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(time.Minute, cfg.MinBackoff)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.OnChange == nil {
		cfg.OnChange = func(*Session, error) {}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Keeper{cfg: cfg, log: log, changed: make(chan struct{})}
}

// Current returns the session that is up, or ErrDown.
func (l *Keeper) Current() (*Session, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cur == nil {
		return nil, ErrDown
	}
	return l.cur, nil
}

// Wait returns the session that is up, waiting for one if need be.
func (l *Keeper) Wait(ctx context.Context) (*Session, error) {
	for {
		l.mu.Lock()
		s, ch := l.cur, l.changed
		l.mu.Unlock()
		if s != nil {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		}
	}
}

// Changed is closed at the next session change (up or down).
func (l *Keeper) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// Restart ends the current session, so Run opens and initialises a new
// one: after a reboot or power-cycle the old one is useless even when the
// port survived (UART-attached modems), since the modem forgot its set-up.
func (l *Keeper) Restart(reason string) {
	l.mu.Lock()
	s := l.cur
	l.mu.Unlock()
	if s != nil {
		l.log.Info("session: restarting the modem session", "reason", reason)
		s.AT.Close()
	}
}

func (l *Keeper) set(s *Session) {
	l.mu.Lock()
	l.cur = s
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

// Run keeps a session up until ctx ends. It performs what the state
// machine of state.go asks for: attempts, reports and waits.
func (l *Keeper) Run(ctx context.Context) error {
	var st state
	var act action
	wait := func() error {
		if err := clock.Sleep(ctx, jitter(act.wait)); err != nil {
			return err
		}
		st, act = st.next(evWaited, l.cfg.MinBackoff, l.cfg.MaxBackoff)
		return nil
	}
	for {
		s, err := l.open(ctx)
		if ctx.Err() != nil {
			if s != nil {
				s.AT.Close()
			}
			return ctx.Err()
		}
		if err != nil {
			st, act = st.next(evFailed, l.cfg.MinBackoff, l.cfg.MaxBackoff)
			if act.report {
				l.log.Warn("session: modem unavailable, retrying with back-off", "port", l.cfg.Path, "err", err)
				l.cfg.OnChange(nil, err)
			} else {
				l.log.Debug("session: modem still unavailable", "port", l.cfg.Path, "err", err, "retry_in", act.wait)
			}
			if err := wait(); err != nil {
				return err
			}
			continue
		}
		st, _ = st.next(evOpened, l.cfg.MinBackoff, l.cfg.MaxBackoff)
		l.log.Info("session: modem session up", "port", l.cfg.Path, "seq", s.Seq, "iccid", s.Identity.ICCID)
		l.set(s)
		l.cfg.OnChange(s, nil)
		select {
		case <-ctx.Done():
			l.set(nil)
			s.AT.Close()
			return ctx.Err()
		case <-s.AT.Closed():
		}
		l.set(nil)
		err = s.AT.Err()
		// An engine whose port failed has stopped but still holds the
		// port: close it, or every USB re-enumeration leaks the old
		// device's descriptor (and the serial driver's pipe).
		s.AT.Close()
		if err == nil {
			err = at.ErrClosed
		}
		st, act = st.next(evEnded, l.cfg.MinBackoff, l.cfg.MaxBackoff)
		l.log.Warn("session: modem session ended", "port", l.cfg.Path, "seq", s.Seq, "err", err)
		l.cfg.OnChange(nil, fmt.Errorf("session %d ended: %w", s.Seq, err))
		if err := wait(); err != nil {
			return err
		}
	}
}

// open makes one attempt at a session.
func (l *Keeper) open(ctx context.Context) (*Session, error) {
	rw, err := l.cfg.Open(l.cfg.Path, l.cfg.Baud)
	if err != nil {
		return nil, err
	}
	opts := append(append(bg96.EngineOptions(), at.WithLogger(l.log), at.WithInitialFence()), l.cfg.ATOptions...)
	a := at.New(rw, opts...)
	// A modem that reboots on its own (brown-out, firmware watchdog)
	// announces it with RDY and has forgotten the init script's settings:
	// the session is over.
	rebooted := make(chan struct{}, 1)
	a.AddIndication("RDY", func([]string) {
		select {
		case rebooted <- struct{}{}:
		default:
		}
	})
	rctx, cancel := context.WithTimeout(ctx, l.cfg.ReadyTimeout)
	defer cancel()
	fail := func(step string, err error) (*Session, error) {
		a.Close()
		return nil, fmt.Errorf("%s on %s: %w", step, l.cfg.Path, err)
	}
	err = bg96.WaitReady(rctx, a, a)
	// An agent started after the modem booted sees no +CPIN URC, only an
	// answer to AT: the SIM is asked either way.
	if l.cfg.Unlock != nil && (err == nil || errors.Is(err, bg96.ErrSIMLocked)) {
		if uerr := l.cfg.Unlock(rctx, a); uerr != nil {
			return fail("SIM PIN", uerr)
		}
		if err != nil {
			err = bg96.WaitReady(rctx, a, a)
		}
	}
	if err != nil {
		return fail("waiting for the modem", err)
	}
	if err := bg96.Init(rctx, a, l.cfg.Init); err != nil {
		return fail("init", err)
	}
	if l.cfg.Setup != nil {
		if err := l.cfg.Setup(rctx, a); err != nil {
			return fail("setup", err)
		}
	}
	m := bg96.New(a)
	id, err := m.Identity(rctx)
	if errors.Is(err, at.ErrClosed) || rctx.Err() != nil {
		return fail("identity", err)
	}
	if err != nil {
		l.log.Warn("session: modem identity incomplete", "err", err)
	}
	// RDY seen during start-up belongs to this session's own boot.
	select {
	case <-rebooted:
	default:
	}
	go func() {
		select {
		case <-rebooted:
			l.log.Warn("session: modem rebooted (RDY): re-initialising")
			a.Close()
		case <-a.Closed():
		}
	}()
	l.mu.Lock()
	l.seq++
	seq := l.seq
	l.mu.Unlock()
	return &Session{AT: a, Modem: m, Identity: id, Seq: seq, Since: l.cfg.Now()}, nil
}

// jitter spreads retries by ±20 % so gateways that lost their modems to
// the same brown-out do not act in step.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}
