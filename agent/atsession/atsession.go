// Package atsession keeps the agent's AT session with the modem alive: it opens
// the serial port, resynchronises the line, waits for the modem to be ready,
// runs the init script and hands the session out; when the port vanishes
// (USB re-enumeration after a power-cycle, a flaky cable) or the modem
// reboots behind the agent's back, it reopens and re-initialises with
// back-off. Everything that talks to the modem asks the keeper for the
// current session instead of holding a port of its own.
//
// The session's life is a state machine (state.go): a pure transition
// function from a phase and an event to the next phase and the action
// Run performs, whose outcome is the next event. Snapshot publishes the
// phase.
//
//	closed ─start─▶ opening ─port opened─▶ booting ─modem ready─▶ initialising ─initialised─▶ up
//	                 ▲    │                   │                      │                         │
//	                 │    └───── failed ──────┴─────── failed ───────┘                         │
//	                 │                        ▼                                                │
//	                 ├───── waited ───── retrying (back-off; one report per outage)            │
//	                 │                                                                         │
//	                 └───── waited ───── settling ◀─────────── ended / restart ────────────────┘
//
//	stop (Run's context ends): every phase ──▶ closed
package atsession

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"cellagent/modem/at"
	"cellagent/modem/bg96"
	"cellagent/modem/clock"
	"cellagent/modem/port"
)

// Config configures a Keeper.
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
	// the keeper's goroutine and must not block.
	OnChange func(s *Session, err error)
	// OnPhase is told every new phase (see Snapshot), on the keeper's
	// goroutine; it must not block.
	OnPhase func(Snapshot)
	Logger  *slog.Logger
	// Clock dates phases and sessions (default clock.System). The waits
	// for the modem and the back-off are real time: no clock makes a
	// modem boot faster.
	Clock clock.Clock
}

// Snapshot is the session's phase as last published. It is a value: the
// keeper replaces it, never changes it.
type Snapshot struct {
	Phase Phase
	Since time.Time // when Phase began
	// Err is why the last attempt failed or the last session ended; it
	// stays through the attempts that follow until a session is up.
	Err   error
	Fails int // attempts failed since the last session
	Seq   int // the session's number while Up
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

	snap atomic.Pointer[Snapshot]

	mu      sync.Mutex
	cur     *Session
	changed chan struct{}
	seq     int
	// restarting is the session Restart closed, so that its end is told
	// from a port that failed.
	restarting *Session
}

// ErrDown is returned by Current when no session is up.
var ErrDown = errors.New("session: modem session is down")

// New prepares a keeper; Run does the work.
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
	if cfg.Clock == nil {
		cfg.Clock = clock.System
	}
	if cfg.OnChange == nil {
		cfg.OnChange = func(*Session, error) {}
	}
	if cfg.OnPhase == nil {
		cfg.OnPhase = func(Snapshot) {}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	k := &Keeper{cfg: cfg, log: log, changed: make(chan struct{})}
	k.snap.Store(&Snapshot{Phase: Closed, Since: cfg.Clock.Now()})
	return k
}

// Snapshot returns the session's phase; it never blocks.
func (l *Keeper) Snapshot() Snapshot { return *l.snap.Load() }

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
	if s != nil {
		l.restarting = s
	}
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
// machine of state.go asks for (open, wait for the boot, initialise,
// hold the session, back off, report) and feeds it what came of it.
func (l *Keeper) Run(ctx context.Context) error {
	b := backoff{l.cfg.MinBackoff, l.cfg.MaxBackoff}
	st, act := state{phase: Closed}.next(event{kind: evStart}, l.cfg.Clock.Now(), b)
	l.publish(st, 0)
	var att *attempt
	var s *Session
	for {
		var ev event
		switch act.do {
		case doOpen:
			att, ev = l.openPort(ctx)
		case doWaitReady:
			ev = att.waitReady(l.cfg.Unlock != nil)
		case doInitialise:
			s, ev = l.initialise(att)
		case doHold:
			ev = l.hold(ctx, s)
		case doWait:
			ev = event{kind: evWaited}
			if err := clock.Sleep(ctx, jitter(act.wait)); err != nil {
				ev = event{kind: evStop}
			}
		case doClose:
			if att != nil {
				att.close()
			}
			if s != nil {
				l.set(nil)
				s.AT.Close()
			}
			return ctx.Err()
		default:
			return fmt.Errorf("atsession: no action in phase %s", st.phase)
		}
		if ev.kind == evFailed || ev.kind == evInitialised {
			att = nil // closed on failure; the session's own otherwise
		}
		if ctx.Err() != nil {
			ev = event{kind: evStop}
		}
		st, act = st.next(ev, l.cfg.Clock.Now(), b)
		l.perform(st, ev, act, s)
		if st.phase != Up && st.phase != Closed {
			s = nil // ended: only a stop still has it to close
		}
	}
}

// perform logs and reports a transition, and publishes the new phase.
func (l *Keeper) perform(st state, ev event, act action, s *Session) {
	seq := 0
	if st.phase == Up {
		seq = s.Seq
	}
	// The snapshot says up before Changed fires, so that whoever wakes
	// on it reads the phase that woke it.
	l.publish(st, seq)
	switch {
	case st.phase == Up:
		l.log.Info("session: modem session up", "port", l.cfg.Path, "seq", s.Seq, "iccid", s.Identity.ICCID)
		l.set(s)
		l.cfg.OnChange(s, nil)
	case ev.kind == evFailed && act.report:
		l.log.Warn("session: modem unavailable, retrying with back-off", "port", l.cfg.Path, "err", ev.err)
		l.cfg.OnChange(nil, ev.err)
	case ev.kind == evFailed:
		l.log.Debug("session: modem still unavailable", "port", l.cfg.Path, "err", ev.err, "retry_in", act.wait)
	case ev.kind == evEnded || ev.kind == evRestart:
		l.log.Warn("session: modem session ended", "port", l.cfg.Path, "seq", s.Seq, "err", errors.Unwrap(ev.err))
		l.cfg.OnChange(nil, ev.err)
	}
}

// publish makes st the snapshot Snapshot returns.
func (l *Keeper) publish(st state, seq int) {
	n := &Snapshot{Phase: st.phase, Since: st.since, Err: st.err, Fails: st.fails, Seq: seq}
	l.snap.Store(n)
	l.cfg.OnPhase(*n)
}

// hold hands s out until its port closes or ctx ends.
func (l *Keeper) hold(ctx context.Context, s *Session) event {
	select {
	case <-ctx.Done():
		return event{kind: evStop}
	case <-s.AT.Closed():
	}
	l.set(nil)
	err := s.AT.Err()
	// An engine whose port failed has stopped but still holds the
	// port: close it, or every USB re-enumeration leaks the old
	// device's descriptor (and the serial driver's pipe).
	s.AT.Close()
	if err == nil {
		err = at.ErrClosed
	}
	err = fmt.Errorf("session %d ended: %w", s.Seq, err)
	l.mu.Lock()
	restarted := l.restarting == s
	l.restarting = nil
	l.mu.Unlock()
	if restarted {
		return event{kind: evRestart, err: err}
	}
	return event{kind: evEnded, err: err}
}

// attempt is one try at a session, from the port's opening to the
// session or its failure.
type attempt struct {
	a    *at.AT
	path string
	// ctx bounds the wait for the modem and the initialisation together.
	ctx    context.Context
	cancel context.CancelFunc
	// rebooted hears RDY: seen after the session is up, it means the
	// modem rebooted on its own.
	rebooted chan struct{}
	// locked: the boot ended with the SIM asking for its PIN.
	locked bool
}

func (t *attempt) close() {
	t.a.Close()
	t.cancel()
}

func (t *attempt) failStep(step string, err error) event {
	t.close()
	return event{kind: evFailed, err: fmt.Errorf("%s on %s: %w", step, t.path, err)}
}

// openPort opens the port and the engine on it.
func (l *Keeper) openPort(ctx context.Context) (*attempt, event) {
	rw, err := l.cfg.Open(l.cfg.Path, l.cfg.Baud)
	if err != nil {
		return nil, event{kind: evFailed, err: err}
	}
	opts := append(append(bg96.EngineOptions(), at.WithLogger(l.log), at.WithInitialFence()), l.cfg.ATOptions...)
	t := &attempt{a: at.New(rw, opts...), path: l.cfg.Path, rebooted: make(chan struct{}, 1)}
	// A modem that reboots on its own (brown-out, firmware watchdog)
	// announces it with RDY and has forgotten the init script's settings:
	// the session is over.
	t.a.AddIndication("RDY", func([]string) {
		select {
		case t.rebooted <- struct{}{}:
		default:
		}
	})
	t.ctx, t.cancel = context.WithTimeout(ctx, l.cfg.ReadyTimeout)
	return t, event{kind: evPortOpened}
}

// waitReady waits for the modem to boot. A SIM asking for its PIN ends
// the boot too when there is a PIN to enter.
func (t *attempt) waitReady(unlock bool) event {
	err := bg96.WaitReady(t.ctx, t.a, t.a)
	if unlock && errors.Is(err, bg96.ErrSIMLocked) {
		t.locked, err = true, nil
	}
	if err != nil {
		return t.failStep("waiting for the modem", err)
	}
	return event{kind: evReady}
}

// initialise turns a modem that answers into a session.
func (l *Keeper) initialise(t *attempt) (*Session, event) {
	a, ctx := t.a, t.ctx
	// An agent started after the modem booted sees no +CPIN URC, only an
	// answer to AT: the SIM is asked either way.
	if l.cfg.Unlock != nil {
		if err := l.cfg.Unlock(ctx, a); err != nil {
			return nil, t.failStep("SIM PIN", err)
		}
		if t.locked {
			if err := bg96.WaitReady(ctx, a, a); err != nil {
				return nil, t.failStep("waiting for the modem", err)
			}
		}
	}
	if err := bg96.Init(ctx, a, l.cfg.Init); err != nil {
		return nil, t.failStep("init", err)
	}
	if l.cfg.Setup != nil {
		if err := l.cfg.Setup(ctx, a); err != nil {
			return nil, t.failStep("setup", err)
		}
	}
	m := bg96.New(a)
	id, err := m.Identity(ctx)
	if errors.Is(err, at.ErrClosed) || ctx.Err() != nil {
		return nil, t.failStep("identity", err)
	}
	if err != nil {
		l.log.Warn("session: modem identity incomplete", "err", err)
	}
	t.cancel()
	// RDY seen during start-up belongs to this session's own boot.
	select {
	case <-t.rebooted:
	default:
	}
	go func() {
		select {
		case <-t.rebooted:
			l.log.Warn("session: modem rebooted (RDY): re-initialising")
			a.Close()
		case <-a.Closed():
		}
	}()
	l.mu.Lock()
	l.seq++
	seq := l.seq
	l.mu.Unlock()
	return &Session{AT: a, Modem: m, Identity: id, Seq: seq, Since: l.cfg.Clock.Now()}, event{kind: evInitialised}
}

// jitter spreads retries by ±20 % so gateways that lost their modems to
// the same brown-out do not act in step.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}
