// Package supervisor watches the cellular link and recovers it when it
// degrades, without ever looping.
//
// Every poll reads registration per domain, packet-domain attach, signal,
// AT responsiveness and optionally a data-path probe, and a tracker turns
// the evidence into a state: healthy, degraded, down, quota-exhausted or
// modem-unresponsive. One bad reading is never an outage: a problem must
// be seen twice (three failed probes for a modem that does not answer)
// before it counts, and then survive the observe grace before anything is
// done, because many outages heal alone.
//
// The recovery ladder is a table of steps — observe, redial, reattach, cfun-reset,
// quota, bsc-reset, reboot, power-cycle — each with its own wait and
// budgets per hour and per day, persisted so that a crash-looping agent
// starts with the budgets it left. A climb takes the next step the
// evidence calls for (a modem that does not answer gets reboot and
// power-cycle, not a reattach) once the previous step's wait has passed;
// a step without budget or prerequisites is skipped with an event saying
// why. An exhausted data quota stops the climb, since no reset refills a
// bundle. A climb that reaches the top parks the ladder with an alert and
// keeps observing; climbs are spaced by an exponential back-off.
//
// The ladder is a state machine (machine.go): a value with a phase, and a
// pure transition function from an event (the evidence as it stands, a
// step's outcome, an operator's request) to the next value and the
// actions to perform. Run only performs them: it polls, takes the steps,
// sends the events, saves the history, and publishes an immutable view
// for Snapshot.
//
// Every state change and every step goes out as an event, with the reason
// and the figures behind it, and to the log.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"cellagent/agent/atsession"
	"cellagent/agent/config"
	"cellagent/agent/event"
	"cellagent/agent/store"
	"cellagent/transport/bsc"
)

// Config is the [supervisor] section of the configuration.
type Config = config.SupervisorConfig

// Link is the modem session manager; *link.Link implements it.
type Link interface {
	Current() (*atsession.Session, error)
	Changed() <-chan struct{}
	Restart(reason string)
}

// BSC is the part of the operator API the ladder uses; *bsc.Client
// implements it.
type BSC interface {
	DataQuota(ctx context.Context, iccid string) (*bsc.Quota, error)
	SMSQuota(ctx context.Context, iccid string) (*bsc.Quota, error)
	Reset(ctx context.Context, iccid string) (*bsc.ResetQueued, error)
}

// Bearer is the data bearer; *bearer.Bearer implements it.
type Bearer interface {
	// Evidence is the kernel's word on the bearer's interface (nil:
	// none).
	Evidence() (up *bool, why string)
	// Dials says whether the agent dials the bearer itself (mode ppp);
	// only then can it redial.
	Dials() bool
	// Redial hangs up and dials again.
	Redial(reason string) error
	// SetQuota stops dialling while the data quota is exhausted.
	SetQuota(exhausted bool)
}

// Power moves the modem's power lines; *power.Controller implements it.
type Power interface {
	PowerOn(ctx context.Context) error
	PowerOff(ctx context.Context) error
	Reset(ctx context.Context) error
	CutPower(ctx context.Context, off time.Duration) error
}

// PowerLines says which lines are wired ([power] names set). The ladder
// must know before it powers a modem down whether it can power it up.
type PowerLines struct {
	PWRKey, ResetN, Supply bool
}

// StateStore keeps the ladder's history across restarts; *store.Store
// implements it. LoadState returns an error matching store.ErrNotFound
// when nothing was saved.
type StateStore interface {
	SaveState(name string, b []byte) error
	LoadState(name string) ([]byte, error)
}

// StateName is the name the supervisor saves its state under.
const StateName = "supervisor"

// Event types beside event.Recovery and event.Quota.
const (
	EventState = "state" // a state change: from, to, reason, figures
	EventAlert = "alert" // the ladder parked at the top, or lost its history
)

// Deps are the supervisor's parts. Link is required; the rest may be nil.
type Deps struct {
	Link Link
	// BSC nil skips the quota and bsc-reset steps (pass nil, not a nil
	// *bsc.Client, when [bsc] is not configured; New catches the latter).
	BSC BSC
	// ICCID is the SIM the operator API knows; empty: the modem's.
	ICCID string
	// Bearer nil skips the redial step; its evidence joins the data path.
	Bearer Bearer
	// ConfigFault reports a configuration fault the agent recognised (a
	// wrong APN in +CEER, a SIM refusing its PIN): the ladder stops, with
	// one alert, until it clears. nil: none.
	ConfigFault func() string
	// Power nil skips the power-cycle step.
	Power      Power
	PowerLines PowerLines
	// Store nil keeps the history in memory only.
	Store StateStore
	// Emit receives every event; it must not block (the daemon queues
	// them durably for MQTT).
	Emit   func(event.Event)
	Clock  Clock
	Logger *slog.Logger
}

// Snapshot is the supervisor's view for the status file.
type Snapshot struct {
	State   State       `json:"state"`
	Reason  string      `json:"reason,omitempty"`
	Since   time.Time   `json:"since,omitzero"` // when State began
	Figures event.Attrs `json:"figures,omitempty"`
	// Step is the ladder step of the current outage (the one under way,
	// else the last taken, or "observe" before any); empty without an
	// outage.
	Step         string    `json:"step,omitempty"`
	Parked       bool      `json:"parked,omitempty"`
	Rounds       int       `json:"rounds,omitempty"` // climbs since the link last stayed good
	NextAction   string    `json:"next_action,omitempty"`
	NextActionAt time.Time `json:"next_action_at,omitzero"`
	Budgets      []Budget  `json:"budgets"`
	LastActions  []Action  `json:"last_actions,omitempty"`
	ActionsToday int       `json:"actions_today"` // steps taken in the last 24 h
	At           time.Time `json:"at"`
}

// Budget is what one step may still do.
type Budget struct {
	Step        string    `json:"step"`
	PerHour     int       `json:"per_hour"`
	PerDay      int       `json:"per_day"`
	HourLeft    int       `json:"hour_left"`
	DayLeft     int       `json:"day_left"`
	NextAllowed time.Time `json:"next_allowed,omitzero"`
	Blocked     string    `json:"blocked,omitempty"`
}

// Action is a step taken.
type Action struct {
	Step      string    `json:"step"`
	At        time.Time `json:"at"`
	Outcome   string    `json:"outcome"`
	Detail    string    `json:"detail,omitempty"`
	Requested bool      `json:"requested,omitempty"`
}

// lastActions is how many actions the snapshot keeps.
const lastActions = 10

// maxRequests bounds the cmd/recover requests waiting for Run.
const maxRequests = 4

// Supervisor is the health model and the recovery ladder; see the package
// documentation.
type Supervisor struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	clock   Clock
	policy  policyConfig
	wake    chan struct{}
	running atomic.Bool
	// dataPath is the MQTT connection state: 0 unknown, 1 up, 2 down.
	dataPath atomic.Int32
	loadErr  error

	// Run's alone; after every change Run publishes a copy (publish),
	// which Snapshot, ActionsToday and Request read without a lock.
	health  tracker
	v       verdict
	vSince  time.Time
	lad     ladder
	hist    history
	actions []Action
	pub     atomic.Pointer[view]

	reqMu    sync.Mutex
	requests []stepID // appended by Request, taken by Run

	// Run's alone.
	nextPoll  time.Time
	lastPoll  time.Time
	iccid     string
	urcSeq    int
	removeURC []func()
}

// New checks cfg and loads the saved history. A history that cannot be
// read because the store fails is an error (acting without it could break
// the budgets); one that is corrupt is reported at Run and replaced.
func New(cfg Config, deps Deps) (*Supervisor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("supervisor: config: %w", err)
	}
	if deps.Link == nil {
		return nil, errors.New("supervisor: a link is required")
	}
	if c, ok := deps.BSC.(*bsc.Client); ok && c == nil {
		deps.BSC = nil
	}
	if deps.Power != nil && !deps.PowerLines.PWRKey && !deps.PowerLines.ResetN && !deps.PowerLines.Supply {
		deps.Power = nil
	}
	if deps.Clock == nil {
		deps.Clock = SystemClock(nil)
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Supervisor{
		cfg: cfg, deps: deps, log: deps.Logger, clock: deps.Clock, policy: policyOf(cfg),
		wake: make(chan struct{}, 1),
		hist: history{},
		v:    verdict{state: StateUnknown, reason: "no observation yet"},
	}
	s.health.cfg = cfg
	s.vSince = s.clock.Now()
	if deps.Store != nil {
		b, err := deps.Store.LoadState(StateName)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("supervisor: loading the ladder's history: %w", err)
		default:
			s.restore(b)
		}
	}
	s.publish()
	return s, nil
}

// view is what Run publishes of its state: a copy nobody changes, so
// readers on other goroutines need no lock.
type view struct {
	v       verdict
	vSince  time.Time
	lad     ladder
	hist    history
	actions []Action
	figures event.Attrs // the last observation's; nil before one
}

// publish makes Run's current state the one readers see.
func (s *Supervisor) publish() {
	w := &view{v: s.v, vSince: s.vSince, lad: s.lad, hist: make(history, len(s.hist)), actions: slices.Clone(s.actions)}
	for id, l := range s.hist {
		w.hist[id] = slices.Clone(l)
	}
	if s.health.seen {
		w.figures = s.health.last.figures()
	}
	s.pub.Store(w)
}

func (s *Supervisor) restore(b []byte) {
	at := stampOf(s.clock)
	now := at.now
	sv, err := decodeSaved(b, at)
	if err != nil {
		s.loadErr = err
		return
	}
	// A clock set back since the save must not park the ladder for a year.
	limit := now.Add(max(s.cfg.Park.Duration, s.cfg.BackoffMax.Duration))
	clamp := func(t time.Time) time.Time {
		if t.After(limit) {
			return limit
		}
		return t
	}
	s.hist = sv.hist
	s.lad.rounds = sv.rounds
	s.lad.nextRound = clamp(sv.nextRound)
	if sv.parkedUntil.After(now) {
		s.lad.parkedUntil = clamp(sv.parkedUntil)
	}
}

// SetDataPath reports the MQTT connection state, the data-path evidence
// when no probe_host is configured.
func (s *Supervisor) SetDataPath(ok bool) {
	v := int32(2)
	if ok {
		v = 1
	}
	if s.dataPath.Swap(v) != v {
		s.poke()
	}
}

// Request schedules a step by name for cmd/recover. The step still needs
// its budget and prerequisites; Request returns once it is queued, and the
// outcome follows as an event.
func (s *Supervisor) Request(step string) error {
	id, ok := stepByName(step)
	if !ok || id == stepObserve {
		return fmt.Errorf("supervisor: unknown step %q (want one of %s)", step, actionNames())
	}
	if why := s.unavailable(id); why != "" {
		return fmt.Errorf("supervisor: %s: %s", step, why)
	}
	if b := s.pub.Load().hist.budget(id, stepConfig(s.cfg, id), s.clock.Now()); b.why != "" {
		if b.next.IsZero() {
			return fmt.Errorf("supervisor: %s: %s", step, b.why)
		}
		return fmt.Errorf("supervisor: %s: %s; next allowed at %s", step, b.why, b.next.UTC().Format(time.RFC3339))
	}
	s.reqMu.Lock()
	defer s.reqMu.Unlock()
	if slices.Contains(s.requests, id) {
		return fmt.Errorf("supervisor: %s is already scheduled", step)
	}
	if len(s.requests) >= maxRequests {
		return fmt.Errorf("supervisor: %d requests already waiting", len(s.requests))
	}
	s.requests = append(s.requests, id)
	s.poke()
	return nil
}

// ActionsToday counts the ladder steps taken in the last 24 hours (the
// telemetry's health.recov).
func (s *Supervisor) ActionsToday() int {
	return s.pub.Load().hist.total(s.clock.Now())
}

// Snapshot returns the supervisor's view.
func (s *Supervisor) Snapshot() Snapshot {
	w := s.pub.Load()
	now := s.clock.Now()
	snap := Snapshot{
		State: w.v.state, Reason: w.v.reason, Since: w.vSince,
		Rounds: w.lad.rounds, Parked: w.lad.parked(now),
		NextAction: w.lad.dueWhat, NextActionAt: w.lad.due,
		LastActions:  slices.Clone(w.actions),
		ActionsToday: w.hist.total(now),
		At:           now,
		Figures:      maps.Clone(w.figures),
	}
	if w.lad.active() {
		snap.Step = stepNames[w.lad.step()]
	}
	for _, st := range s.cfg.Steps.Named() {
		id, _ := stepByName(st.Name)
		b := w.hist.budget(id, st.StepConfig, now)
		snap.Budgets = append(snap.Budgets, Budget{
			Step: st.Name, PerHour: st.PerHour, PerDay: st.PerDay,
			HourLeft: b.hourLeft, DayLeft: b.dayLeft, NextAllowed: b.next, Blocked: b.why,
		})
	}
	return snap
}

// Run supervises until ctx ends. It must be called once.
func (s *Supervisor) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("supervisor: Run called twice")
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.watchLink(wctx)
	}()
	defer s.dropURCs()
	if s.loadErr != nil {
		s.emit(EventAlert, "error", "the ladder's saved history was unreadable; budgets start afresh",
			event.Attrs{"error": s.loadErr.Error()})
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// A step is judged on fresh evidence, taken at its due time.
		now := s.clock.Now()
		if !now.Before(s.nextPoll) || !s.lad.due.IsZero() && !now.Before(s.lad.due) && s.lastPoll.Before(s.lad.due) {
			s.poll(ctx)
			continue
		}
		s.serveRequests(ctx)
		s.tick(ctx)
		if err := s.sleep(ctx); err != nil {
			return err
		}
	}
}

// poke wakes Run: a registration URC, a link change or a request.
func (s *Supervisor) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Supervisor) watchLink(ctx context.Context) {
	for {
		ch := s.deps.Link.Changed()
		select {
		case <-ctx.Done():
			return
		case <-ch:
			s.poke()
		}
	}
}

// minRepoll keeps a burst of URCs from turning into a burst of polls.
const minRepoll = time.Second

func (s *Supervisor) sleep(ctx context.Context) error {
	now := s.clock.Now()
	until := s.nextPoll
	// A due time already past is one the evidence did not call for
	// acting on; the next poll decides again.
	if due := s.lad.due; due.After(now) && due.Before(until) {
		until = due
	}
	woken := func() {
		if at := s.lastPoll.Add(minRepoll); at.Before(s.nextPoll) {
			s.nextPoll = at
		}
	}
	// A pending wake must not let a fake clock jump past it.
	select {
	case <-s.wake:
		woken()
		return nil
	default:
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.wake:
		woken()
	case <-s.clock.After(until.Sub(now)):
	}
	return nil
}

// setVerdict records the state and announces a change.
func (s *Supervisor) setVerdict(v verdict) {
	old := s.v
	s.v = v
	changed := old.state != v.state
	if changed {
		s.vSince = s.clock.Now()
	}
	var figs event.Attrs
	if s.health.seen {
		figs = s.health.last.figures()
	}
	s.publish()
	if !changed {
		return
	}
	attrs := event.Attrs{"from": string(old.state), "to": string(v.state)}
	if v.reason != "" {
		attrs["reason"] = v.reason
	}
	maps.Copy(attrs, figs)
	msg := "link " + string(v.state)
	if v.reason != "" {
		msg += ": " + v.reason
	}
	s.emit(EventState, stateLevel[v.state], msg, attrs)
}

var stateLevel = map[State]string{
	StateUnknown: "info", StateHealthy: "info", StateDegraded: "warn", StateDown: "warn",
	StateQuota: "error", StateUnresponsive: "error", StateConfigFault: "error",
}

// emit logs an event and hands it to Deps.Emit.
func (s *Supervisor) emit(typ, level, msg string, attrs event.Attrs) {
	s.emitAt(s.clock.Now(), typ, level, msg, attrs)
}

// emitAt is emit for an event that happened at ts, such as a step that
// started at ts and took minutes.
func (s *Supervisor) emitAt(ts time.Time, typ, level, msg string, attrs event.Attrs) {
	lv := map[string]slog.Level{"info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}[level]
	args := []any{"type", typ}
	keys := slices.Collect(maps.Keys(attrs))
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, k, attrs[k])
	}
	s.log.Log(context.Background(), lv, "supervisor: "+msg, args...)
	if s.deps.Emit != nil {
		s.deps.Emit(event.Event{Time: ts, Type: typ, Level: level, Msg: msg, Attrs: attrs})
	}
}

// save persists the history; a failure is logged, not fatal, because
// supervising without persistence beats not supervising.
func (s *Supervisor) save() {
	if s.deps.Store == nil {
		return
	}
	b, err := encodeSaved(saved{hist: s.hist, rounds: s.lad.rounds, nextRound: s.lad.nextRound, parkedUntil: s.lad.parkedUntil}, stampOf(s.clock))
	if err == nil {
		err = s.deps.Store.SaveState(StateName, b)
	}
	if err != nil {
		s.log.Error("supervisor: cannot save the ladder's history; budgets will not survive a restart", "err", err)
	}
}
