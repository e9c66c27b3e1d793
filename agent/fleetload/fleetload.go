// Package fleetload runs a fleet of simulated gateways in one process: N
// BG96 simulators, each on its own pseudo-terminal, each driven by its own
// agent (agent.Run, with its own store and device id), against one real
// MQTT broker, while a fleet reader follows them as `cellagent fleet watch
// --json` does. Seeded random signal changes, outages and incoming SMS
// keep the fleet busy; Run measures what that costs (CPU, memory, broker
// traffic) and how fast telemetry reaches the reader.
//
// It is the engine of `cellbench fleet` and scripts/bench-fleet.
package fleetload

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"cellagent/modem/bg96emu"
	"cellagent/modem/clock"
	"cellagent/transport/mqtt"
)

// Options configure a simulation. Count and Broker are required; a zero
// duration or interval takes its default, and a negative Warmup,
// SignalEvery, OutageEvery or SMSEvery turns that off.
type Options struct {
	Count int
	// Broker must be tcp://: the measurement reads the agents' PUBLISH
	// packets on their way to the socket, which TLS would hide.
	Broker         string
	AllowPlaintext bool
	Prefix         string // default mqtt.DefaultPrefix
	Seed           uint64

	// StartRate is how many gateways start per second (default 100), so
	// the broker and the simulators are not hit by all of them at once.
	StartRate float64
	// StartTimeout bounds the wait for every gateway to be seen online
	// with telemetry (default 60 s plus the ramp).
	StartTimeout time.Duration
	Warmup       time.Duration // after all are online (default 10 s)
	Duration     time.Duration // the measurement window (default 60 s)

	// Poll and Heartbeat replace the agent's defaults (60 s, 30 min): a
	// window of a minute must see each gateway poll and report a few
	// times (defaults 5 s and 60 s).
	Poll, Heartbeat time.Duration
	// Mean time between random events of one gateway, exponentially
	// distributed: a signal change beyond the dead-bands (default 30 s),
	// a registration loss of 5-30 s (default 5 min), an incoming SMS
	// (default 5 min).
	SignalEvery, OutageEvery, SMSEvery time.Duration

	// Baud paces the simulated serial lines; default sim.NoPacing. The
	// simulator meets its 115200 baud deadlines by spinning up to 1.5 ms
	// per write, which for a thousand modems would cost more CPU than
	// the agents being measured.
	Baud int

	// Dir holds the gateways' pty links and stores; default a temporary
	// directory, removed at the end.
	Dir string
	// BrokerPID, when set, is the broker's process, measured over the
	// same window.
	BrokerPID int
	// CPUProfile and HeapProfile receive profiles of the window. The CPU
	// samples carry the label "part" (agent, modem, driver, reader), so
	// `go tool pprof -tags` splits the CPU between them.
	CPUProfile, HeapProfile io.Writer
	// Logger receives progress (info) and the agents' warnings and
	// errors, tagged with the gateway id.
	Logger *slog.Logger
}

func (o *Options) defaults() error {
	if o.Count <= 0 {
		return fmt.Errorf("fleetload: count %d: want at least 1", o.Count)
	}
	u, err := url.Parse(o.Broker)
	if err != nil || u.Host == "" {
		return fmt.Errorf("fleetload: broker %q: want tcp://host:port", o.Broker)
	}
	if u.Scheme != "tcp" {
		return fmt.Errorf("fleetload: broker %q: want tcp:// (the latency tap reads the MQTT packets, which TLS hides)", o.Broker)
	}
	if !o.AllowPlaintext {
		return fmt.Errorf("fleetload: broker %q is plain tcp://: allow plaintext explicitly", o.Broker)
	}
	if o.Prefix == "" {
		o.Prefix = mqtt.DefaultPrefix
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.Warmup, 10*time.Second)
	def(&o.Duration, time.Minute)
	def(&o.Poll, 5*time.Second)
	def(&o.Heartbeat, time.Minute)
	def(&o.SignalEvery, 30*time.Second)
	def(&o.OutageEvery, 5*time.Minute)
	def(&o.SMSEvery, 5*time.Minute)
	if o.Poll < time.Second {
		return fmt.Errorf("fleetload: poll %s: want at least 1s (the agent's minimum)", o.Poll)
	}
	if o.Duration < 0 {
		return fmt.Errorf("fleetload: duration %s: want a positive window", o.Duration)
	}
	if o.StartRate <= 0 {
		o.StartRate = 100
	}
	ramp := time.Duration(float64(o.Count) / o.StartRate * float64(time.Second))
	def(&o.StartTimeout, time.Minute+ramp)
	if o.Baud == 0 {
		o.Baud = bg96emu.NoPacing
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Result is what a run measured. Rates, latencies and usage cover the
// window only.
type Result struct {
	Count int
	// Online is how many gateways the reader saw online with telemetry
	// before the window; StartUp how long the first to the last took.
	Online  int
	StartUp time.Duration
	Window  time.Duration

	Process Usage
	Broker  *Usage // nil without Options.BrokerPID
	// BaseRSS is the process before the first gateway: the reader and
	// the runtime, not the gateways.
	BaseRSS    uint64
	Goroutines int
	Threads    int
	FDs        int
	HeapInuse  uint64

	// Published counts the agents' PUBLISH packets (all kinds), Delivered
	// the messages the reader took in; Telemetry the agents' telemetry.
	Published, Delivered, Telemetry int64

	// PubToReader runs from the agent writing a telemetry PUBLISH to its
	// socket to the reader's output line for it: broker plus reader.
	// ReadToReader runs from the agent's AT+QCSQ that read a changed
	// signal to the same line: the signal change to the reader, minus
	// the wait for the next poll, which PollWait gives (mean). SMS runs
	// from the simulated network handing a registered modem an SMS to the
	// reader's sms/in line.
	PubToReader, ReadToReader, SMS Latency
	PollWait                       time.Duration
	// LagEarly and LagLate are the p99 of PubToReader in the first and
	// the last quarter of the window: a reader that falls behind shows a
	// growing lag.
	LagEarly, LagLate time.Duration
	// Backlog is published minus taken in, sampled each second: its
	// maximum in the window, and what was left after the settle.
	BacklogMax, BacklogEnd int64
	// PendingMax is the most updates the reader's output loop had waiting.
	PendingMax int
	// Gaps are telemetry messages missing by their seq, summed over the
	// gateways (Gateway.Gaps).
	Gaps uint64

	// The driven events over the whole run, and the SMS the reader saw.
	SignalChanges, Outages, SMSSent, SMSSeen int64
	// Warnings counts the agents' log records at warn level or above.
	Warnings int64
}

// Usage is one process's share of the window.
type Usage struct {
	CPU    time.Duration
	RSSMax uint64 // bytes
}

// Latency summarises a sample of durations.
type Latency struct {
	N             int
	P50, P99, Max time.Duration
}

func summarise(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return Latency{N: len(s), P50: at(0.50), P99: at(0.99), Max: s[len(s)-1]}
}

// KeepsUp is the verdict on the reader: nothing left outstanding after
// the settle, no telemetry lost, and a lag that did not grow (the last
// quarter's p99 within twice the first's, plus 100 ms of noise).
func (r Result) KeepsUp() bool {
	return r.BacklogEnd == 0 && r.Gaps == 0 && r.LagLate <= 2*r.LagEarly+100*time.Millisecond
}

// Run starts the fleet, waits until every gateway is online, warms up,
// measures for the window and shuts everything down. An interrupted run
// returns ctx's error.
func Run(ctx context.Context, o Options) (Result, error) {
	if err := o.defaults(); err != nil {
		return Result{}, err
	}
	if err := checkLimits(o.Count); err != nil {
		return Result{}, err
	}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "cellagent-fleet-")
		if err != nil {
			return Result{}, fmt.Errorf("fleetload: %w", err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	f := &fleet{o: o, dir: dir, log: o.Logger, byID: map[string]*gateway{}, sms: map[string]smsSent{}}
	return f.run(ctx)
}

// fleet is one run.
type fleet struct {
	o   Options
	dir string
	log *slog.Logger

	gws  []*gateway
	byID map[string]*gateway
	rd   *reader
	m    meter

	smsMu sync.Mutex
	sms   map[string]smsSent // by originator, unique per message
}

type smsSent struct {
	at     time.Time
	timed  bool // sent while registered: its latency is not an outage
	device string
}

func (f *fleet) run(ctx context.Context) (Result, error) {
	res := Result{Count: f.o.Count}
	for i := range f.o.Count {
		g := newGateway(f, i)
		f.gws = append(f.gws, g)
		f.byID[g.id] = g
	}

	rctx, stopReader := context.WithCancel(context.WithoutCancel(ctx))
	rd, err := startReader(rctx, f)
	if err != nil {
		stopReader()
		return res, err
	}
	f.rd = rd
	defer func() { stopReader(); rd.wait() }()
	if err := rd.subscribed(ctx); err != nil {
		return res, err
	}
	res.BaseRSS = readProc(os.Getpid()).rss

	// Agents stop before their modems, so each drains and says offline
	// while its port still answers; drivers stop first of all.
	agentCtx, stopAgents := context.WithCancel(context.WithoutCancel(ctx))
	var agents sync.WaitGroup
	defer func() {
		stopAgents()
		f.waitAgents(&agents)
		for _, g := range f.gws {
			g.close()
		}
	}()
	driveCtx, stopDrivers := context.WithCancel(ctx)
	var drivers sync.WaitGroup
	defer func() { stopDrivers(); drivers.Wait() }()

	start := time.Now()
	if err := f.startAll(ctx, agentCtx, &agents); err != nil {
		return res, err
	}
	if err := f.waitOnline(ctx, start, &res); err != nil {
		return res, err
	}
	seed := f.o.Seed
	for _, g := range f.gws {
		drivers.Go(func() {
			pprof.Do(driveCtx, pprof.Labels("part", "driver"), func(ctx context.Context) { g.drive(ctx, seed) })
		})
	}
	if f.o.Warmup > 0 {
		f.log.Info("fleetload: warming up", "for", f.o.Warmup)
		if err := clock.Sleep(ctx, f.o.Warmup); err != nil {
			return res, err
		}
	}
	if err := f.measure(ctx, &res); err != nil {
		return res, err
	}
	stopDrivers()
	drivers.Wait()
	f.settle(ctx, &res)
	for _, g := range rd.fl.Snapshot() {
		res.Gaps += g.Gaps
	}
	res.Warnings = f.m.warnings.Load()
	return res, nil
}

// startAll starts the gateways at the configured rate.
func (f *fleet) startAll(ctx, agentCtx context.Context, agents *sync.WaitGroup) error {
	f.log.Info("fleetload: starting gateways", "count", f.o.Count, "per_second", f.o.StartRate,
		"poll", f.o.Poll, "heartbeat", f.o.Heartbeat, "baud", f.o.Baud)
	every := time.Duration(float64(time.Second) / f.o.StartRate)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i, g := range f.gws {
		if err := g.start(agentCtx, agents); err != nil {
			return err
		}
		if (i+1)%100 == 0 {
			f.log.Info("fleetload: started", "gateways", i+1)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// waitOnline waits until the reader has seen every gateway online with
// telemetry, or the start timeout.
func (f *fleet) waitOnline(ctx context.Context, start time.Time, res *Result) error {
	deadline := time.Now().Add(f.o.StartTimeout)
	for {
		res.Online = f.rd.online()
		if res.Online == f.o.Count {
			res.StartUp = time.Since(start)
			f.log.Info("fleetload: all gateways online", "after", res.StartUp.Round(time.Millisecond))
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("fleetload: only %d of %d gateways online with telemetry after %s", res.Online, f.o.Count, f.o.StartTimeout)
		}
		if err := clock.Sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// measure samples the process (and the broker) over the window.
func (f *fleet) measure(ctx context.Context, res *Result) error {
	f.log.Info("fleetload: measuring", "for", f.o.Duration)
	if f.o.CPUProfile != nil {
		if err := pprof.StartCPUProfile(f.o.CPUProfile); err != nil {
			return fmt.Errorf("fleetload: cpu profile: %w", err)
		}
	}
	self := os.Getpid()
	cpu0 := selfCPU()
	var bcpu0 time.Duration
	if f.o.BrokerPID > 0 {
		bcpu0 = readProc(f.o.BrokerPID).cpu
		res.Broker = &Usage{}
	}
	pub0, rx0 := f.m.published.Load(), f.rd.delivered.Load()
	tele0 := f.m.telemetry.Load()
	start := f.m.open()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	end := time.NewTimer(f.o.Duration)
	defer end.Stop()
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			err = ctx.Err()
			break loop
		case <-end.C:
			break loop
		case <-tick.C:
			res.Process.RSSMax = max(res.Process.RSSMax, readProc(self).rss)
			if res.Broker != nil {
				res.Broker.RSSMax = max(res.Broker.RSSMax, readProc(f.o.BrokerPID).rss)
			}
			res.BacklogMax = max(res.BacklogMax, f.backlog())
		}
	}
	stop := f.m.close()
	res.Window = stop.Sub(start)
	res.Process.CPU = selfCPU() - cpu0
	if res.Broker != nil {
		res.Broker.CPU = readProc(f.o.BrokerPID).cpu - bcpu0
	}
	if f.o.CPUProfile != nil {
		pprof.StopCPUProfile()
	}
	if f.o.HeapProfile != nil && err == nil {
		if perr := pprof.Lookup("heap").WriteTo(f.o.HeapProfile, 0); perr != nil {
			err = fmt.Errorf("fleetload: heap profile: %w", perr)
		}
	}
	p := readProc(self)
	res.Threads, res.FDs = p.threads, countFDs(self)
	res.Process.RSSMax = max(res.Process.RSSMax, p.rss)
	res.Goroutines = runtime.NumGoroutine()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.HeapInuse = ms.HeapInuse
	res.Published = f.m.published.Load() - pub0
	res.Delivered = f.rd.delivered.Load() - rx0
	res.Telemetry = f.m.telemetry.Load() - tele0
	f.m.results(res, start, stop)
	res.PendingMax = f.rd.pendingMax()
	return err
}

// settle lets the reader catch up once the drivers are quiet, for up to
// two poll intervals and a few seconds, and records what is left.
func (f *fleet) settle(ctx context.Context, res *Result) {
	deadline := time.Now().Add(2*f.o.Poll + 5*time.Second)
	for (f.backlog() > 0 || f.m.smsSeen.Load() < f.m.smsSent.Load()) && time.Now().Before(deadline) {
		if clock.Sleep(ctx, 50*time.Millisecond) != nil {
			break
		}
	}
	res.BacklogEnd = f.backlog()
	res.SignalChanges, res.Outages = f.m.changes.Load(), f.m.outages.Load()
	res.SMSSent, res.SMSSeen = f.m.smsSent.Load(), f.m.smsSeen.Load()
}

func (f *fleet) backlog() int64 { return f.m.published.Load() - f.rd.delivered.Load() }

func (f *fleet) waitAgents(agents *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { agents.Wait(); close(done) }()
	// Each agent's own drain is bounded (10 s); a thousand share the CPU.
	select {
	case <-done:
	case <-time.After(time.Minute):
		f.log.Error("fleetload: agents still running a minute after the stop; leaving them")
	}
}

func (f *fleet) sentSMS(from string, s smsSent) {
	f.smsMu.Lock()
	f.sms[from] = s
	f.smsMu.Unlock()
}

func (f *fleet) takeSMS(from string) (smsSent, bool) {
	f.smsMu.Lock()
	defer f.smsMu.Unlock()
	s, ok := f.sms[from]
	delete(f.sms, from)
	return s, ok
}

// meter collects samples while the window is open.
type meter struct {
	published, telemetry               atomic.Int64
	changes, outages, smsSent, smsSeen atomic.Int64
	warnings                           atomic.Int64

	mu        sync.Mutex
	on        bool
	pub, read []sample
	sms       []time.Duration
	pollWait  []time.Duration
}

type sample struct {
	at time.Time
	d  time.Duration
}

func (m *meter) open() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.on = true
	return time.Now()
}

func (m *meter) close() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.on = false
	return time.Now()
}

func (m *meter) addPub(at time.Time, d time.Duration) {
	m.mu.Lock()
	if m.on {
		m.pub = append(m.pub, sample{at, d})
	}
	m.mu.Unlock()
}

func (m *meter) addRead(at time.Time, d, wait time.Duration) {
	m.mu.Lock()
	if m.on {
		m.read = append(m.read, sample{at, d})
		m.pollWait = append(m.pollWait, wait)
	}
	m.mu.Unlock()
}

func (m *meter) addSMS(d time.Duration) {
	m.mu.Lock()
	if m.on {
		m.sms = append(m.sms, d)
	}
	m.mu.Unlock()
}

func (m *meter) results(res *Result, start, stop time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ds := func(s []sample, from, to time.Time) []time.Duration {
		var out []time.Duration
		for _, x := range s {
			if !x.at.Before(from) && x.at.Before(to) {
				out = append(out, x.d)
			}
		}
		return out
	}
	res.PubToReader = summarise(ds(m.pub, start, stop))
	res.ReadToReader = summarise(ds(m.read, start, stop))
	res.SMS = summarise(m.sms)
	q := stop.Sub(start) / 4
	res.LagEarly = summarise(ds(m.pub, start, start.Add(q))).P99
	res.LagLate = summarise(ds(m.pub, stop.Add(-q), stop)).P99
	if len(m.pollWait) > 0 {
		var sum time.Duration
		for _, w := range m.pollWait {
			sum += w
		}
		res.PollWait = sum / time.Duration(len(m.pollWait))
	}
}

// newRand gives gateway i its own stream, so a seed replays the same
// events per gateway whatever the scheduling.
func newRand(seed uint64, i int) *rand.Rand { return rand.New(rand.NewPCG(seed, uint64(i))) }

// gatewayDir is where gateway i keeps its pty link and its store.
func gatewayDir(root string, i int) string { return filepath.Join(root, fmt.Sprintf("gw%04d", i)) }
