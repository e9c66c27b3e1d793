package mqtt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Handlers carry out commands; the daemon supplies them. A command whose
// handler is nil is not subscribed to. A handler returns once the request
// is taken (an SMS accepted into the outbox, a recovery step scheduled),
// not when its effect is complete: results of that arrive on their own
// topics (sms/out/result, event).
type Handlers struct {
	SendSMS func(ctx context.Context, req SMSRequest) error
	// Status publishes telemetry now, whatever the dead-bands say.
	Status  func(ctx context.Context) error
	Recover func(ctx context.Context, step string) error
}

// Commands configure remote commands, which are off unless Enabled.
type Commands struct {
	Enabled    bool
	Handlers   Handlers
	MaxPayload int // bytes; default DefaultMaxCommandPayload
	// PerMinute and Burst bound how many commands run (defaults 6 and
	// 3): each may send an SMS or reset a modem, which cost money and
	// connectivity. Refusals are answered, within four times that budget.
	PerMinute float64
	Burst     int
	Timeout   time.Duration // per handler call; default 60 s
	// AllowTo, when not empty, lists the only destinations sms/send may
	// address, exactly as the command gives them.
	AllowTo []string
}

// queued is a command waiting for the worker, with the session it came
// in on: its result goes back on that session, which may not be the
// current one yet while the birth is in flight.
type queued struct {
	cmd Command
	s   *session
}

// recentResults is how many answered commands are remembered: a QoS 1
// redelivery, or a retry with the same id, gets the first answer again
// without running twice.
const recentResults = 64

type dispatcher struct {
	cfg    Commands
	c      *Client
	in     chan queued
	run    *rate.Limiter // command executions
	answer *rate.Limiter // refusals and repeats answered
	logs   *rate.Limiter // warnings about refused and ignored commands
	allow  map[string]bool

	mu     sync.Mutex
	recent map[string]*CommandResult // nil value: still running
	order  []string

	done, refused atomic.Uint64
	unlogged      atomic.Uint64 // warnings the logs budget held back
}

func newDispatcher(cfg Commands, c *Client) (*dispatcher, error) {
	if cfg.MaxPayload <= 0 {
		cfg.MaxPayload = DefaultMaxCommandPayload
	}
	if cfg.PerMinute <= 0 {
		cfg.PerMinute = 6
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 3
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Minute
	}
	m := &dispatcher{
		cfg:    cfg,
		c:      c,
		in:     make(chan queued, 8),
		run:    perMinute(cfg.PerMinute, cfg.Burst),
		answer: perMinute(4*cfg.PerMinute, 4*cfg.Burst),
		logs:   perMinute(4*cfg.PerMinute, 4*cfg.Burst),
		recent: map[string]*CommandResult{},
	}
	if len(cfg.AllowTo) > 0 {
		m.allow = map[string]bool{}
		for _, to := range cfg.AllowTo {
			if !validNumber(to) {
				return nil, fmt.Errorf("mqtt: config: AllowTo %q: want an optional + and 3-20 digits", to)
			}
			m.allow[to] = true
		}
	}
	return m, nil
}

// enabled lists the commands to subscribe to.
func (m *dispatcher) enabled() []string {
	if !m.cfg.Enabled {
		return nil
	}
	var out []string
	for _, name := range commandNames {
		if m.handler(name) {
			out = append(out, name)
		}
	}
	return out
}

func (m *dispatcher) handler(name string) bool {
	h := m.cfg.Handlers
	switch name {
	case CmdSMSSend:
		return h.SendSMS != nil
	case CmdStatus:
		return h.Status != nil
	case CmdRecover:
		return h.Recover != nil
	}
	return false
}

// receive runs on paho's delivery goroutine: it validates and queues, and
// never blocks, so a slow handler cannot stall PUBACKs. retained is the
// message's retain flag, set when the broker hands over a retained
// message on SUBSCRIBE.
func (m *dispatcher) receive(s *session, topic string, payload []byte, retained bool) {
	log := m.c.log
	p, ok := ParseTopic(m.c.topics.Prefix, topic)
	if !ok || p.Command == "" || p.Result {
		m.warn("mqtt: ignoring message on an unexpected topic", "topic", topic)
		return
	}
	// Only our own topics are subscribed, but a bridge or a shared broker
	// session could still route another gateway's command here.
	if p.Device != m.c.topics.Device {
		m.warn("mqtt: ignoring command for another device", "topic", topic)
		return
	}
	if !m.cfg.Enabled || !m.handler(p.Command) {
		m.warn("mqtt: ignoring disabled command", "command", p.Command)
		return
	}
	cmd, err := ParseCommand(p.Command, payload, m.cfg.MaxPayload)
	if err != nil {
		var ce *CommandError
		id := ""
		if errors.As(err, &ce) {
			id = ce.ID
		}
		m.refuse(s, p.Command, id, err.Error())
		return
	}
	// A retained command is a standing order: the broker hands it over
	// on every SUBSCRIBE, which the device makes at the first connect of
	// every run, after the duplicate memory is gone. Run, it would act
	// again at every start (an SMS, a modem reset). MQTT 3.1.1 sets the
	// flag only for such hand-overs, never for a live command.
	if retained {
		m.refuse(s, cmd.Name, cmd.ID, "command refused: retained; publish commands without retain and clear this one")
		return
	}
	now := m.c.clock.Now()
	if !cmd.Expires.IsZero() && now.After(cmd.Expires) {
		m.refuse(s, cmd.Name, cmd.ID, "command refused: expired at "+cmd.Expires.UTC().Format(time.RFC3339))
		return
	}
	if cmd.Name == CmdSMSSend && m.allow != nil && !m.allow[cmd.SMS.To] {
		m.refuse(s, cmd.Name, cmd.ID, "command refused: destination not in the allow-list")
		return
	}
	key := cmd.Name + "\x00" + cmd.ID
	if prev, seen := m.claim(key); seen {
		// Repeats draw on the refusals' budget: each answer crosses the
		// paid link, and a requester stuck in a loop must not make the
		// gateway publish without end.
		if prev != nil && m.answer.AllowN(now, 1) {
			m.publish(s, cmd.Name, *prev)
		}
		log.Info("mqtt: duplicate command", "command", cmd.Name, "id", cmd.ID)
		return
	}
	if !m.run.AllowN(now, 1) {
		m.forget(key)
		m.refuse(s, cmd.Name, cmd.ID, "command refused: rate limited")
		return
	}
	select {
	case m.in <- queued{cmd, s}:
	default:
		m.forget(key)
		m.refuse(s, cmd.Name, cmd.ID, "command refused: busy")
	}
}

// warn logs a refused or ignored command within the logs budget, as the
// answers are: a flood of 20,000 commands must not write 20,000 lines.
// The first line after a quiet spell says how many were held back.
func (m *dispatcher) warn(msg string, args ...any) {
	if !m.logs.AllowN(m.c.clock.Now(), 1) {
		m.unlogged.Add(1)
		return
	}
	if n := m.unlogged.Swap(0); n > 0 {
		args = append(args, "unlogged_before", n)
	}
	m.c.log.Warn(msg, args...)
}

func (m *dispatcher) refuse(s *session, name, id, reason string) {
	m.refused.Add(1)
	m.warn("mqtt: command refused", "command", name, "id", id, "reason", reason)
	if !m.answer.AllowN(m.c.clock.Now(), 1) {
		return
	}
	m.publish(s, name, CommandResult{V: SchemaVersion, ID: id, Error: reason, TS: m.c.clock.Now().Unix()})
}

// claim returns the remembered result of key, or marks key as running.
func (m *dispatcher) claim(key string) (prev *CommandResult, seen bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if prev, seen = m.recent[key]; seen {
		return prev, true
	}
	m.recent[key] = nil
	m.order = append(m.order, key)
	if len(m.order) > recentResults {
		delete(m.recent, m.order[0])
		m.order = m.order[1:]
	}
	return nil, false
}

// forget drops a claim whose command never ran, so a retry may run it.
func (m *dispatcher) forget(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if res, ok := m.recent[key]; !ok || res != nil {
		return
	}
	delete(m.recent, key)
	for i, k := range m.order {
		if k == key {
			m.order = append(m.order[:i], m.order[i+1:]...)
			break
		}
	}
}

func (m *dispatcher) finish(key string, res *CommandResult) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.recent[key]; ok {
		m.recent[key] = res
	}
}

// work runs the queued commands one at a time until ctx ends.
func (m *dispatcher) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case q := <-m.in:
			cmd := q.cmd
			res := CommandResult{V: SchemaVersion, ID: cmd.ID, OK: true}
			if err := m.exec(ctx, cmd); err != nil {
				res.OK, res.Error = false, errorText(err)
			}
			res.TS = m.c.clock.Now().Unix()
			m.done.Add(1)
			m.finish(cmd.Name+"\x00"+cmd.ID, &res)
			m.publish(q.s, cmd.Name, res)
		}
	}
}

func (m *dispatcher) exec(ctx context.Context, cmd Command) (err error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	// Commands come from the network: a handler bug they trigger must
	// cost that command, not the agent.
	defer func() {
		if r := recover(); r != nil {
			m.c.log.Error("mqtt: command handler panicked", "command", cmd.Name, "id", cmd.ID, "panic", r)
			err = fmt.Errorf("internal error in %s handler", cmd.Name)
		}
	}()
	h := m.cfg.Handlers
	switch cmd.Name {
	case CmdSMSSend:
		err = h.SendSMS(ctx, cmd.SMS)
	case CmdStatus:
		err = h.Status(ctx)
	case CmdRecover:
		err = h.Recover(ctx, cmd.Step)
	}
	if err != nil {
		m.c.log.Warn("mqtt: command failed", "command", cmd.Name, "id", cmd.ID, "err", err)
	}
	return err
}

// publish sends a result on session s without waiting, also not for
// paho to take the packet: it runs on paho's delivery goroutine too,
// which must not block. Results are not queued durably: a requester that
// hears nothing repeats the command with the same id and gets the
// remembered answer.
func (m *dispatcher) publish(s *session, name string, res CommandResult) {
	select {
	case <-s.lost:
		m.c.log.Warn("mqtt: connection lost, command result dropped", "command", name, "id", res.ID)
		return
	default:
	}
	b, _ := json.Marshal(res) // strings, a bool and numbers: cannot fail
	s.publish(outgoing{m.c.topics.CommandResult(name), 1, false, b})
}

// perMinute is a token bucket of burst tokens refilled at n a minute. It
// is safe for concurrent use: the paho clients of an old and a new session
// may deliver at the same time.
func perMinute(n float64, burst int) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(n/60), burst)
}

// errorText keeps handler errors short in results: they cross a paid
// link, and the full chain is in the device log.
func errorText(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	return s
}
