// Package bearer owns the cellular data bearer: in mode "ppp" it dials
// the modem's data port and runs Debian's pppd on the connected line,
// redialling with back-off; in mode "external" another program owns the
// data path and the bearer only watches its interface. In both it reads
// the interface's state from the kernel (rtnetlink, sysfs counters) and
// gives it to the supervisor as data-path evidence, and to the status.
//
// The lifecycle is machine.go's pure transition function; Run only
// performs its actions. A failure no redial can fix — the network
// refusing the APN (+CEER), pppd finding no PPP in the kernel — blocks
// the bearer with one alert until the configuration is reloaded, and an
// exhausted quota blocks it until the quota is back: a bearer must not
// dial in a loop.
package bearer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"cellagent/modem/clock"
)

// Modes.
const (
	ModeOff      = "off"
	ModePPP      = "ppp"
	ModeExternal = "external"
)

// Config configures a Bearer.
type Config struct {
	Mode      string
	Interface string
	PPP       PPP
	// BackoffMin and BackoffMax space redials after failures, doubling.
	BackoffMin, BackoffMax time.Duration
	// Cause asks the modem for the cause of the last failure (AT+CEER on
	// the AT port); nil when unknown.
	Cause func(ctx context.Context) (string, error)
	// ConfigFault says whether a +CEER cause is one the configuration
	// must fix (a wrong APN or credentials).
	ConfigFault func(cause string) bool
	// OnEvent receives the bearer's events for telemetry; it must not
	// block.
	OnEvent func(level, msg string, attrs map[string]any)
	// Poll is how often the interface is read when netlink is silent
	// (default 10 s); ResolvConf the resolver file of an external bearer
	// (default /etc/resolv.conf).
	Poll       time.Duration
	ResolvConf string
	Logger     *slog.Logger
	// Clock dates failures and the next dial (clock.System when nil).
	Clock clock.Clock
}

// Snapshot is the bearer for status.json and telemetry.
type Snapshot struct {
	Mode      string    `json:"mode"`
	State     State     `json:"state"`
	Interface string    `json:"interface,omitempty"`
	LinkUp    bool      `json:"link_up"`
	Addresses []string  `json:"addresses,omitempty"`
	DNS       []string  `json:"dns,omitempty"`
	UpSince   time.Time `json:"up_since,omitzero"`
	RxBytes   uint64    `json:"rx_bytes"`
	TxBytes   uint64    `json:"tx_bytes"`
	Dials     int       `json:"dials"`
	// LastFailure is what ended the last attempt (pppd's exit, the
	// dial's answer), Cause the modem's +CEER for it.
	LastFailure   string    `json:"last_failure,omitempty"`
	LastFailureAt time.Time `json:"last_failure_at,omitzero"`
	Cause         string    `json:"cause,omitempty"`
	Blocked       string    `json:"blocked,omitempty"`
	NextDialAt    time.Time `json:"next_dial_at,omitzero"`
}

// Bearer runs the data bearer; see the package comment.
type Bearer struct {
	cfg Config
	log *slog.Logger
	ev  chan tagged

	mu   sync.Mutex
	m    machine
	snap Snapshot
	link Link
	gen  int // the attempt events belong to; older ones are dropped

	// Run's alone.
	cancel context.CancelFunc
	done   chan struct{}
	timer  *time.Timer
}

type tagged struct {
	event
	gen int // 0: not tied to an attempt
}

// New prepares a bearer; Run does the work.
func New(cfg Config) *Bearer {
	if cfg.Mode == "" {
		cfg.Mode = ModeOff
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 10 * time.Second
	}
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = "/etc/resolv.conf"
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 10 * time.Second
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = cfg.BackoffMin
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System
	}
	if cfg.OnEvent == nil {
		cfg.OnEvent = func(string, string, map[string]any) {}
	}
	if cfg.ConfigFault == nil {
		cfg.ConfigFault = func(string) bool { return false }
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Bearer{
		cfg: cfg, log: log, ev: make(chan tagged, 16),
		m:    machine{ppp: cfg.Mode == ModePPP, state: StateOff, min: cfg.BackoffMin, max: cfg.BackoffMax},
		snap: Snapshot{Mode: cfg.Mode, State: StateOff, Interface: cfg.Interface},
	}
	if cfg.Mode == ModeOff {
		b.snap.Interface = ""
	}
	return b
}

// Snapshot returns the bearer's state, with the byte counters read from
// the kernel now.
func (b *Bearer) Snapshot() Snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.link.Exists {
		b.snap.RxBytes, b.snap.TxBytes = counter(b.cfg.Interface, "rx_bytes"), counter(b.cfg.Interface, "tx_bytes")
	}
	s := b.snap
	s.Addresses, s.DNS = slices.Clone(s.Addresses), slices.Clone(s.DNS)
	return s
}

// Evidence is the data-path evidence for the supervisor: the kernel's
// word on the interface. nil in mode off, and while a ppp bearer is
// blocked by a fault (the supervisor reads Fault instead).
func (b *Bearer) Evidence() (*bool, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cfg.Mode == ModeOff || b.m.fault {
		return nil, ""
	}
	up := b.link.Exists && b.link.Up && len(b.link.Addresses) > 0
	why := ""
	switch {
	case !b.link.Exists:
		why = b.cfg.Interface + " does not exist"
	case !b.link.Up:
		why = b.cfg.Interface + " is down"
	case len(b.link.Addresses) == 0:
		why = b.cfg.Interface + " has no address"
	}
	if !up && b.snap.LastFailure != "" {
		why += "; last failure: " + b.snap.LastFailure
	}
	return &up, why
}

// Fault is the configuration fault blocking the bearer ("" when none):
// no reset fixes it.
func (b *Bearer) Fault() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.m.fault {
		return ""
	}
	return b.m.blocked
}

// Dials says whether the bearer dials itself (mode ppp).
func (b *Bearer) Dials() bool { return b.cfg.Mode == ModePPP }

// ErrNotPPP is returned by Redial when the agent does not own the bearer.
var ErrNotPPP = errors.New("bearer: redial needs [data] mode = \"ppp\"")

// Redial hangs up and dials again now (the supervisor's redial step).
func (b *Bearer) Redial(reason string) error {
	if b.cfg.Mode != ModePPP {
		return ErrNotPPP
	}
	b.mu.Lock()
	blocked := b.m.state == StateBlocked
	why := b.m.blocked
	b.mu.Unlock()
	if blocked {
		return fmt.Errorf("bearer: blocked: %s", why)
	}
	b.log.Info("bearer: redial", "reason", reason)
	b.send(tagged{event: event{kind: evRedial, why: reason}})
	return nil
}

// SetQuota tells the bearer whether the data quota is exhausted: it does
// not dial while it is.
func (b *Bearer) SetQuota(exhausted bool) {
	if exhausted {
		b.send(tagged{event: event{kind: evBlock, why: "data quota exhausted"}})
	} else {
		b.send(tagged{event: event{kind: evUnblock}})
	}
}

// Reset lifts a fault after the configuration was reloaded: the bearer
// dials again. A quota block stays.
func (b *Bearer) Reset() {
	b.send(tagged{event: event{kind: evUnblock, fault: true}})
}

func (b *Bearer) send(e tagged) {
	select {
	case b.ev <- e:
	default:
		// The loop is far behind; a dropped wake-up is repeated by the
		// next poll, and attempt events are few (one exit per attempt).
		b.log.Warn("bearer: event queue full; dropping", "event", e.kind)
	}
}

// Run runs the bearer until ctx ends. It must be called once.
func (b *Bearer) Run(ctx context.Context) error {
	if b.cfg.Mode == ModeOff {
		<-ctx.Done()
		return ctx.Err()
	}
	wake := make(chan struct{}, 1)
	poke := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	if err := watchKernel(ctx, poke); err != nil {
		b.log.Warn("bearer: no netlink notifications; polling the interface", "err", err, "every", b.cfg.Poll)
	}
	tick := time.NewTicker(b.cfg.Poll)
	defer tick.Stop()
	defer b.stopAttempt()
	b.handle(ctx, tagged{event: event{kind: evStart}})
	b.readLink(ctx)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e := <-b.ev:
			b.mu.Lock()
			stale := e.gen != 0 && e.gen != b.gen
			b.mu.Unlock()
			if !stale {
				b.handle(ctx, e)
			}
		case <-wake:
			b.readLink(ctx)
		case <-tick.C:
			b.readLink(ctx)
		}
	}
}

// readLink reads the interface and feeds a change to the machine.
func (b *Bearer) readLink(ctx context.Context) {
	l, err := ReadLink(b.cfg.Interface)
	if err != nil {
		b.log.Warn("bearer: reading the interface", "err", err)
		return
	}
	b.mu.Lock()
	was := b.link.Exists && b.link.Up && len(b.link.Addresses) > 0
	b.link = l
	b.snap.LinkUp = l.Up
	b.snap.Addresses = l.Addresses
	b.snap.RxBytes, b.snap.TxBytes = l.RxBytes, l.TxBytes
	if b.cfg.Mode == ModeExternal {
		// The program owning the bearer writes the resolver file.
		b.snap.DNS = resolvers(b.cfg.ResolvConf)
	}
	b.mu.Unlock()
	up := l.Exists && l.Up && len(l.Addresses) > 0
	switch {
	case up && !was:
		b.handle(ctx, tagged{event: event{kind: evIfUp}})
	case !up && was:
		why := b.cfg.Interface + " went down"
		if !l.Exists {
			why = b.cfg.Interface + " disappeared"
		}
		b.handle(ctx, tagged{event: event{kind: evIfDown, why: why}})
	}
}

// handle runs one event through the machine and performs its actions.
func (b *Bearer) handle(ctx context.Context, e tagged) {
	b.mu.Lock()
	old := b.m.state
	next, acts := transition(b.m, e.event)
	b.m = next
	b.snap.State, b.snap.Blocked = next.state, next.blocked
	now := b.cfg.Clock.Now()
	if next.state == StateUp && old != StateUp {
		b.snap.UpSince = now
	}
	if next.state != StateUp {
		b.snap.UpSince = time.Time{}
	}
	if next.state != StateBackoff {
		b.snap.NextDialAt = time.Time{}
	}
	b.mu.Unlock()
	if old != next.state {
		b.log.Info("bearer: state", "from", old, "to", next.state)
		if next.state == StateUp {
			s := b.Snapshot()
			b.cfg.OnEvent("info", fmt.Sprintf("data bearer up on %s", s.Interface),
				map[string]any{"interface": s.Interface, "addresses": strings.Join(s.Addresses, " "), "dials": s.Dials})
		}
	}
	for _, a := range acts {
		switch a.kind {
		case actDial:
			b.startAttempt(ctx)
		case actStop:
			b.stopAttempt()
		case actArm:
			b.arm(a.delay)
		case actRecord:
			b.record(a.why, a.cause)
		case actAlert:
			b.cfg.OnEvent("error", "data bearer blocked: "+a.why+"; no redial until the configuration is fixed and reloaded",
				map[string]any{"interface": b.cfg.Interface, "blocked": a.why})
		}
	}
}

func (b *Bearer) record(why, cause string) {
	b.mu.Lock()
	b.snap.LastFailure, b.snap.Cause, b.snap.LastFailureAt = why, cause, b.cfg.Clock.Now()
	b.mu.Unlock()
	b.log.Warn("bearer: attempt failed", "why", why, "cause", cause)
	attrs := map[string]any{"interface": b.cfg.Interface, "why": why}
	if cause != "" {
		attrs["cause"] = cause
	}
	b.cfg.OnEvent("warn", "data bearer: "+why, attrs)
}

func (b *Bearer) arm(d time.Duration) {
	b.mu.Lock()
	b.snap.NextDialAt = b.cfg.Clock.Now().Add(d)
	gen := b.gen
	b.mu.Unlock()
	if b.timer != nil {
		b.timer.Stop()
	}
	b.timer = time.AfterFunc(d, func() { b.send(tagged{event: event{kind: evTimer}, gen: gen}) })
}

// startAttempt dials and runs pppd in the background; its end comes back
// as an event of this attempt's generation.
func (b *Bearer) startAttempt(ctx context.Context) {
	b.stopAttempt()
	b.mu.Lock()
	b.gen++
	gen := b.gen
	b.snap.Dials++
	b.mu.Unlock()
	actx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	b.cancel, b.done = cancel, done
	go func() {
		defer close(done)
		b.attempt(actx, gen)
	}()
}

// stopAttempt ends the running attempt (pppd gets SIGTERM) and waits.
func (b *Bearer) stopAttempt() {
	if b.timer != nil {
		b.timer.Stop()
	}
	if b.cancel == nil {
		return
	}
	b.cancel()
	<-b.done
	b.cancel, b.done = nil, nil
}

// attempt is one dial and one pppd run.
func (b *Bearer) attempt(ctx context.Context, gen int) {
	p := b.cfg.PPP
	emit := func(e event) { b.send(tagged{event: e, gen: gen}) }
	f, err := openData(p.Port)
	if err != nil {
		emit(event{kind: evDialFail, why: err.Error()})
		return
	}
	defer f.Close()
	if err := dial(ctx, f, p.CID, p.ConnectTimeout); err != nil {
		if ctx.Err() != nil {
			return
		}
		e := event{kind: evDialFail, why: err.Error()}
		var de *DialError
		if errors.As(err, &de) && b.cfg.Cause != nil {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			e.cause, _ = b.cfg.Cause(cctx)
			cancel()
			e.fault = e.cause != "" && b.cfg.ConfigFault(e.cause)
		}
		emit(e)
		return
	}
	emit(event{kind: evDialed})
	opts, cleanup, err := p.optionsFile()
	if err != nil {
		emit(event{kind: evExit, why: err.Error()})
		return
	}
	defer cleanup()
	cmd := exec.CommandContext(ctx, p.PPPD, p.Args(opts)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Stdin = f
	out, err := cmd.StdoutPipe()
	if err != nil {
		emit(event{kind: evExit, why: "pppd: " + err.Error()})
		return
	}
	cmd.Stderr = cmd.Stdout
	plog := &pppLog{}
	b.log.Info("bearer: starting pppd", "pppd", p.PPPD, "args", p.Args(opts))
	if err := cmd.Start(); err != nil {
		emit(event{kind: evExit, why: "start pppd: " + err.Error(), fault: true})
		return
	}
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		plog.read(out, func(l string) {
			b.log.Info("pppd: " + l)
			dns, _ := plog.snapshot()
			b.mu.Lock()
			b.snap.DNS = dns
			b.mu.Unlock()
		})
	}()
	<-logDone
	err = cmd.Wait()
	if ctx.Err() != nil {
		return
	}
	_, last := plog.snapshot()
	why, code := describeExit(err, last)
	emit(event{kind: evExit, why: why, fault: fatalExit[code]})
}
