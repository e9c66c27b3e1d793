package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
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
	Logger              *slog.Logger
	Now                 func() time.Time
}

// Outbox sends MO requests from the store.
type Outbox struct {
	cfg  OutboxConfig
	port sms.Commander
	log  *slog.Logger
	kick chan struct{}

	stopOnce sync.Once
	stop     chan struct{}
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
	if cfg.Now == nil {
		cfg.Now = time.Now
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
		snap, err := o.cfg.Limiter.Snapshot()
		if err == nil {
			err = o.cfg.Store.SaveState(limiterState, snap)
		}
		if err != nil {
			return "", 0, fmt.Errorf("outbox: save rate-limit state: %w", err)
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

func (o *Outbox) encode(req Request, refs sms.RefSource) ([]sms.PDU, error) {
	opts := sms.Options{SMSC: o.cfg.SMSC, StatusReport: req.Report, Refs: refs}
	if len(req.Data) > 0 {
		return sms.EncodeData(req.To, req.Data, opts)
	}
	return sms.EncodeText(req.To, req.Text, opts)
}

// Stop makes Run return nil once the message in flight, if any, is sent or
// given back to the queue: a graceful shutdown must not cut a +CMGS short,
// since the modem may then send the SMS without the agent knowing.
func (o *Outbox) Stop() { o.stopOnce.Do(func() { close(o.stop) }) }

// Run sends due messages one at a time until ctx ends, the port fails or
// Stop is called.
func (o *Outbox) Run(ctx context.Context) error {
	for {
		select {
		case <-o.stop:
			return nil
		default:
		}
		now := o.cfg.Now()
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
		return o.fail(it.ID, -1, fmt.Sprintf("%d attempts interrupted by agent restarts (last: %s); it may have been sent", it.Attempts, it.LastErr))
	}
	if err := o.cfg.Store.MarkSending(it.ID); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	attempt := it.Attempts + 1
	var req Request
	if err := json.Unmarshal(it.Rec, &req); err != nil {
		return o.fail(it.ID, -1, fmt.Sprintf("stored request unreadable: %v", err))
	}
	// Concatenation references come from the store so they do not repeat
	// right after a restart and confuse the recipient's reassembly.
	pdus, err := o.encode(req, o.cfg.Store)
	if err != nil {
		return o.fail(it.ID, -1, err.Error())
	}
	refs, err := sms.Send(ctx, o.port, pdus...)
	if err == nil {
		if err := o.cfg.Store.MarkSent(it.ID, refs); err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		o.log.Info("outbox: SMS sent", "id", it.ID, "to", req.To, "refs", refs)
		return nil
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
		// Not the message's fault: try again as soon as the port is back.
		if err2 := o.cfg.Store.MarkRetry(it.ID, o.cfg.Now(), reason); err2 != nil {
			return fmt.Errorf("outbox: %w", err2)
		}
		return fmt.Errorf("outbox: sending %s: %w", it.ID, err)
	case class == sms.Permanent:
		return o.fail(it.ID, code, reason)
	case class == sms.Unclassified && attempt >= sms.UnclassifiedRetries:
		return o.fail(it.ID, code, fmt.Sprintf("%s (unclassified error, gave up after %d attempts)", reason, attempt))
	case attempt >= o.cfg.MaxAttempts:
		return o.fail(it.ID, code, fmt.Sprintf("%s (gave up after %d attempts)", reason, attempt))
	}
	delay := o.backoff(attempt)
	o.log.Warn("outbox: SMS send failed, will retry", "id", it.ID, "attempt", attempt, "in", delay, "err", reason)
	if err := o.cfg.Store.MarkRetry(it.ID, o.cfg.Now().Add(delay), reason); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

func (o *Outbox) fail(id string, code int, reason string) error {
	o.log.Warn("outbox: SMS failed for good", "id", id, "code", code, "reason", reason)
	if err := o.cfg.Store.MarkFailed(id, code, reason); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// backoff doubles from BaseDelay per attempt up to MaxDelay.
func (o *Outbox) backoff(attempt int) time.Duration {
	return clock.Backoff(o.cfg.BaseDelay, o.cfg.MaxDelay, attempt)
}
