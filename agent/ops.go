package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"cellagent/agent/messaging"
	"cellagent/agent/store"
)

// Operations is what callers outside the agent's own loops may ask of a
// running agent: MQTT commands, the local API (and through it the CLI)
// and SMS commands all go through it, so they cannot drift apart.
type Operations interface {
	// SendSMS queues an MO message; nil means it is on disk. A request
	// whose ID the outbox holds already queues nothing (Duplicate); the
	// same ID with another message is ErrKeyReused.
	SendSMS(ctx context.Context, req messaging.Request) (Queued, error)
	// SMS is a queued message's state and outcome.
	SMS(id string) (store.OutboxItem, error)
	// Status is the agent's view, as status.json carries it, built now.
	Status() Status
	// PublishTelemetry sends a telemetry sample now, whatever the
	// dead-bands say.
	PublishTelemetry()
	// Recover queues a ladder step; its budget and prerequisites apply.
	Recover(step string) error
	// ReconnectMQTT drops the broker connection and dials again at once;
	// it says whether the connection was up.
	ReconnectMQTT() bool
	// AT sends one command through the modem session's engine, in turn
	// with the agent's own. Commands that change what the agent relies on
	// are refused with ErrRefused unless force.
	AT(ctx context.Context, cmd string, timeout time.Duration, force bool) ([]string, error)
}

// Queued is an accepted MO request.
type Queued struct {
	ID        string
	Parts     int
	Duplicate bool
}

// Errors of Operations that callers tell apart.
var (
	ErrKeyReused = errors.New("request id already used for another message")
	ErrRefused   = errors.New("command refused")
	ErrNoSession = errors.New("no modem session")
)

var _ Operations = (*daemon)(nil)

func (d *daemon) SendSMS(_ context.Context, req messaging.Request) (Queued, error) {
	dup := false
	if req.ID != "" {
		it, err := d.st.Get(req.ID)
		switch {
		case err == nil:
			var prev messaging.Request
			if json.Unmarshal(it.Rec, &prev) != nil || prev.To != req.To || prev.Text != req.Text ||
				!slices.Equal(prev.Data, req.Data) || prev.Report != req.Report {
				return Queued{}, fmt.Errorf("%w: %s", ErrKeyReused, req.ID)
			}
			dup = true
		case !errors.Is(err, store.ErrNotFound):
			return Queued{}, err
		}
	}
	id, parts, err := d.outbox.Submit(req)
	if err != nil {
		return Queued{}, err
	}
	if !dup {
		d.log.Info("agent: SMS accepted", "id", id, "parts", parts)
	}
	return Queued{ID: id, Parts: parts, Duplicate: dup}, nil
}

func (d *daemon) SMS(id string) (store.OutboxItem, error) { return d.st.Get(id) }

func (d *daemon) Status() Status { return d.status() }

func (d *daemon) PublishTelemetry() { kick(d.kickTele) }

func (d *daemon) Recover(step string) error { return d.sup.Request(step) }

func (d *daemon) ReconnectMQTT() bool { return d.client.Reconnect() }

func (d *daemon) AT(ctx context.Context, cmd string, timeout time.Duration, force bool) ([]string, error) {
	if why := atRefusal(cmd); why != "" && !force {
		return nil, fmt.Errorf("%w: %s %s (send it with force if you must)", ErrRefused, cmd, why)
	}
	s, err := d.keeper.Current()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoSession, err)
	}
	if force {
		d.log.Warn("agent: forced AT command from a local client", "cmd", cmd)
	}
	return s.AT.Command(ctx, cmd, atTimeout(timeout)...)
}
