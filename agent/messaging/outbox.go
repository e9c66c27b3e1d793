package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"cellagent/agent/ratelimit"
	"cellagent/agent/store"
	"cellagent/modem/at"
	"cellagent/modem/clock"
	"cellagent/modem/sms"
	"cellagent/transport/mqtt"
)

// Request asks for one MO message: the sms/send command's request
// (transport/mqtt's SMSRequest). Exactly one of Text and Data is set; Data
// goes out as 8-bit (DCS 4). ID is the requester's idempotency key, e.g.
// an MQTT command id: a redelivered request with the same ID is not sent
// twice. Empty: the outbox assigns one.
type Request = mqtt.SMSRequest

// OutboxConfig configures an Outbox.
type OutboxConfig struct {
	Store *store.Store
	// Limiter is optional; its budget is saved in the store so a restart
	// does not refill it.
	Limiter *ratelimit.Limiter
	// SMSC is written into every PDU ("" leaves it to the modem's AT+CSCA).
	SMSC string
	// MaxAttempts bounds the tries of one message (default 8); BaseDelay and
	// MaxDelay shape the exponential back-off between them (default 30s
	// and 30min).
	MaxAttempts         int
	BaseDelay, MaxDelay time.Duration
	// StoreRetry is the first pause before writing an outcome the store
	// refused again; it doubles up to 10 s (default 1 s).
	StoreRetry time.Duration
	Logger     *slog.Logger
	// Clock dates attempts and back-offs (clock.System when nil).
	Clock clock.Clock
}

// Outbox sends MO requests from the store.
type Outbox struct {
	cfg  OutboxConfig
	port sms.Commander
	log  *slog.Logger
	kick chan struct{}

	stopOnce sync.Once
	stop     chan struct{}
	// oversizeOnce logs a limiter snapshot the store cannot take once.
	oversizeOnce sync.Once

	// An outcome the store could not take: kept here and written again
	// until it can be, before any other message is taken. Sent again
	// instead, the SMS would go out twice once the store recovers.
	mu        sync.Mutex
	unwritten *outcome
	storeErr  error // the last failed write, nil once writes succeed
}

// outcome is the state change that ends one attempt of a message.
type outcome struct {
	id, what string
	write    func() error
}

const limiterState = "ratelimit"

// NewOutbox prepares an outbox and restores the limiter's saved budget.
func NewOutbox(c sms.Commander, cfg OutboxConfig) (*Outbox, error) {
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 8
	}
	if cfg.BaseDelay <= 0 {
		cfg.BaseDelay = 30 * time.Second
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = 30 * time.Minute
	}
	if cfg.StoreRetry <= 0 {
		cfg.StoreRetry = time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Limiter != nil {
		b, err := cfg.Store.LoadState(limiterState)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("outbox: load rate-limit state: %w", err)
		default:
			if err := cfg.Limiter.Restore(b); err != nil {
				return nil, fmt.Errorf("outbox: restore rate-limit state: %w", err)
			}
		}
	}
	return &Outbox{cfg: cfg, port: c, log: cfg.Logger, kick: make(chan struct{}, 1), stop: make(chan struct{})}, nil
}

// Submit validates a request, charges it to the rate limits and commits it
// to the store. Only a nil error means the message is accepted: it is on
// disk and will be sent or reported failed. It returns the message id and
// the number of SMS parts it takes.
func (o *Outbox) Submit(req Request) (id string, parts int, err error) {
	if (req.Text == "") == (len(req.Data) == 0) {
		return "", 0, errors.New("outbox: a request needs exactly one of text and data")
	}
	if err := o.StoreError(); err != nil {
		return "", 0, fmt.Errorf("outbox: not accepting SMS while the store cannot write (%w); try again later", err)
	}
	pdus, err := o.encode(req, sms.NewMemoryRefs(0))
	if err != nil {
		return "", 0, err
	}
	if req.ID != "" {
		if it, err := o.cfg.Store.Get(req.ID); err == nil {
			return it.ID, len(pdus), nil
		}
	}
	if o.cfg.Limiter != nil {
		if err := o.cfg.Limiter.Allow(req.To, len(pdus)); err != nil {
			return "", 0, err
		}
		// Saved before the send: after a crash the budget counts this
		// message once too often rather than not at all.
		if err := o.saveLimiter(); err != nil {
			return "", 0, err
		}
	}
	rec, err := json.Marshal(req)
	if err != nil {
		return "", 0, fmt.Errorf("outbox: encode request: %w", err)
	}
	if req.ID != "" {
		if _, err := o.cfg.Store.EnqueueID(req.ID, rec); err != nil {
			return "", 0, fmt.Errorf("outbox: %w", err)
		}
		id = req.ID
	} else if id, err = o.cfg.Store.Enqueue(rec); err != nil {
		return "", 0, fmt.Errorf("outbox: %w", err)
	}
	o.log.Info("outbox: SMS accepted", "id", id, "to", req.To, "parts", len(pdus))
	select {
	case o.kick <- struct{}{}:
	default:
	}
	return id, len(pdus), nil
}

// saveLimiter writes the limiter's budget to the store. A snapshot the
// store refuses as too large is logged once and otherwise ignored: the
// limiter in memory still enforces every budget, only a restart would
// forget part of today's, while refusing would stop all SMS for good as
// the snapshot never shrinks before its window passes.
func (o *Outbox) saveLimiter() error {
	snap, err := o.cfg.Limiter.Snapshot()
	if err == nil {
		err = o.cfg.Store.SaveState(limiterState, snap)
	}
	if errors.Is(err, store.ErrTooLarge) {
		o.oversizeOnce.Do(func() {
			o.log.Error("outbox: rate-limit state too large to save; sending continues, but a restart forgets the budget used since the last save",
				"err", err)
		})
		return nil
	}
	if err != nil {
		return fmt.Errorf("outbox: save rate-limit state: %w", err)
	}
	return nil
}

// Destination groups stored requests for store.Options.OutboxGroup, so
// messages to one number leave in the order they were accepted, retries
// included: a recipient reading a sequence of commands or alerts must not
// get them shuffled. An unreadable record is a group of its own.
func Destination(rec []byte) string {
	var req struct {
		To string `json:"to"`
	}
	if err := json.Unmarshal(rec, &req); err != nil {
		return "\x00" + string(rec)
	}
	return req.To
}

func (o *Outbox) encode(req Request, refs sms.RefSource) ([]sms.PDU, error) {
	opts := sms.Options{SMSC: o.cfg.SMSC, StatusReport: req.Report, Refs: refs}
	if len(req.Data) > 0 {
		return sms.EncodeData(req.To, req.Data, opts)
	}
	return sms.EncodeText(req.To, req.Text, opts)
}

// StoreError is the store's last failed write of an outcome while that
// outcome is still held in memory, nil when the store writes.
func (o *Outbox) StoreError() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.storeErr
}

// Stop makes Run return nil once the message in flight, if any, is sent or
// given back to the queue: a graceful shutdown must not cut a +CMGS short,
// since the modem may then send the SMS without the agent knowing.
func (o *Outbox) Stop() { o.stopOnce.Do(func() { close(o.stop) }) }

// Run sends due messages one at a time until ctx ends, the port fails or
// Stop is called.
func (o *Outbox) Run(ctx context.Context) error {
	for {
		if err := o.flush(ctx); err != nil {
			return err
		}
		select {
		case <-o.stop:
			return nil
		default:
		}
		now := o.cfg.Clock.Now()
		due, queued, err := o.cfg.Store.NextDue()
		if err != nil {
			return fmt.Errorf("outbox: next due: %w", err)
		}
		// No back-off is longer than MaxDelay: a retry due further ahead
		// was scheduled before the wall clock was set back, and is due.
		horizon := now
		if queued && due.Sub(now) > o.cfg.MaxDelay {
			horizon = due
		}
		it, ok, err := o.cfg.Store.Next(horizon)
		if err != nil {
			return fmt.Errorf("outbox: next: %w", err)
		}
		if ok {
			if err := o.send(ctx, it); err != nil {
				return err
			}
			continue
		}
		wait := time.Hour
		if queued {
			wait = max(due.Sub(now), 10*time.Millisecond)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-o.kick:
			t.Stop()
		case <-o.stop:
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// send makes one attempt. It returns an error only when the outbox cannot
// go on (port gone, store failing); a failed SMS is a state, not an error.
func (o *Outbox) send(ctx context.Context, it store.OutboxItem) error {
	if it.Attempts >= o.cfg.MaxAttempts {
		// Only attempts cut short by a crash get here (a failed attempt
		// gives up in time below): a message whose sending takes the agent
		// down must not be sent again on every restart.
		return o.fail(ctx, it.ID, -1, fmt.Sprintf("%d attempts interrupted by agent restarts (last: %s); it may have been sent", it.Attempts, it.LastErr))
	}
	if err := o.cfg.Store.MarkSending(it.ID); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	attempt := it.Attempts + 1
	var req Request
	if err := json.Unmarshal(it.Rec, &req); err != nil {
		return o.fail(ctx, it.ID, -1, fmt.Sprintf("stored request unreadable: %v", err))
	}
	// Concatenation references come from the store so they do not repeat
	// right after a restart and confuse the recipient's reassembly.
	pdus, err := o.encode(req, o.cfg.Store)
	if err != nil {
		return o.fail(ctx, it.ID, -1, err.Error())
	}
	refs, err := sms.Send(ctx, o.port, pdus...)
	if err == nil {
		o.log.Info("outbox: SMS sent", "id", it.ID, "to", req.To, "refs", refs)
		return o.settle(ctx, outcome{id: it.ID, what: fmt.Sprintf("sent, references %v", refs),
			write: func() error { return o.cfg.Store.MarkSent(it.ID, refs) }})
	}
	code := -1
	var se *sms.SendError
	if errors.As(err, &se) {
		code = se.Code
	}
	class := sms.ClassOf(err)
	reason := sms.Meaning(err)
	switch {
	case errors.Is(err, at.ErrClosed) || ctx.Err() != nil:
		// Not the message's fault: try again as soon as the port is back,
		// in its place in the queue (a not-before of now would sort it
		// after the messages accepted while the port was away).
		if err2 := o.settle(ctx, outcome{id: it.ID, what: "interrupted, to retry",
			write: func() error { return o.cfg.Store.MarkRetry(it.ID, time.Time{}, reason) }}); err2 != nil {
			return err2
		}
		return fmt.Errorf("outbox: sending %s: %w", it.ID, err)
	case class == sms.Permanent:
		return o.fail(ctx, it.ID, code, reason)
	case class == sms.Unclassified && attempt >= sms.UnclassifiedRetries:
		return o.fail(ctx, it.ID, code, fmt.Sprintf("%s (unclassified error, gave up after %d attempts)", reason, attempt))
	case attempt >= o.cfg.MaxAttempts:
		return o.fail(ctx, it.ID, code, fmt.Sprintf("%s (gave up after %d attempts)", reason, attempt))
	}
	delay := o.backoff(attempt)
	o.log.Warn("outbox: SMS send failed, will retry", "id", it.ID, "attempt", attempt, "in", delay, "err", reason)
	notBefore := o.cfg.Clock.Now().Add(delay)
	return o.settle(ctx, outcome{id: it.ID, what: "failed, to retry",
		write: func() error { return o.cfg.Store.MarkRetry(it.ID, notBefore, reason) }})
}

func (o *Outbox) fail(ctx context.Context, id string, code int, reason string) error {
	o.log.Warn("outbox: SMS failed for good", "id", id, "code", code, "reason", reason)
	return o.settle(ctx, outcome{id: id, what: "failed: " + reason,
		write: func() error { return o.cfg.Store.MarkFailed(id, code, reason) }})
}

// settle writes the outcome of an attempt, holding it in memory and
// retrying while the store cannot write (a full disk): see flush.
func (o *Outbox) settle(ctx context.Context, oc outcome) error {
	o.mu.Lock()
	o.unwritten = &oc
	o.mu.Unlock()
	return o.flush(ctx)
}

// flush writes the held outcome, if any, retrying with back-off until it
// is written or ctx ends (it then stays held for the next Run). Until
// then no other message is taken and Submit refuses, and the failure is
// logged once, not on every retry. Stop does not cut it short: the drain
// deadline does, through ctx.
func (o *Outbox) flush(ctx context.Context) error {
	o.mu.Lock()
	oc := o.unwritten
	o.mu.Unlock()
	if oc == nil {
		return nil
	}
	for n := 1; ; n++ {
		err := oc.write()
		var te *store.TransitionError
		if errors.As(err, &te) && o.StoreError() == nil {
			// Not the store's fault but a state the item cannot leave:
			// holding the outcome would retry it for ever.
			o.mu.Lock()
			o.unwritten = nil
			o.mu.Unlock()
			return fmt.Errorf("outbox: %w", err)
		}
		if err == nil || te != nil {
			// After failed writes, a transition error means one of them
			// was written after all (its commit failed late): done.
			o.mu.Lock()
			failed := o.storeErr != nil
			o.unwritten, o.storeErr = nil, nil
			o.mu.Unlock()
			if failed {
				o.log.Info("outbox: the store writes again; held outcome written", "id", oc.id, "outcome", oc.what)
			}
			return nil
		}
		o.mu.Lock()
		first := o.storeErr == nil
		o.storeErr = err
		o.mu.Unlock()
		if first {
			o.log.Error("outbox: the store cannot write an SMS outcome; holding it in memory, sending nothing else and refusing new SMS until it can",
				"id", oc.id, "outcome", oc.what, "err", err, "disk_full", errors.Is(err, syscall.ENOSPC))
		}
		// The disk's recovery is real time, not policy time.
		if clock.Sleep(ctx, clock.Backoff(o.cfg.StoreRetry, 10*time.Second, n)) != nil {
			return fmt.Errorf("outbox: outcome of %s (%s) not written yet: %w", oc.id, oc.what, err)
		}
	}
}

// backoff doubles from BaseDelay per attempt up to MaxDelay.
func (o *Outbox) backoff(attempt int) time.Duration {
	return clock.Backoff(o.cfg.BaseDelay, o.cfg.MaxDelay, attempt)
}
