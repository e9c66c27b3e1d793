package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"cellagent/agent/messaging"
	"cellagent/agent/ratelimit"
	"cellagent/agent/store"
	"cellagent/modem/at"
	"cellagent/modem/sms"
	"cellagent/transport/localapi"
)

// apiKeyPrefix keeps the local API's idempotency keys apart from MQTT
// command ids in the outbox, where both are message ids.
const apiKeyPrefix = "local:"

// apiBackend serves the local API from the agent's Operations and feed.
type apiBackend struct {
	ops  Operations
	feed *feed
	at   bool
}

func (b apiBackend) Status(context.Context) ([]byte, error) {
	return json.MarshalIndent(b.ops.Status(), "", "  ")
}

func (b apiBackend) SendSMS(ctx context.Context, r localapi.SMSRequest) (localapi.SMSQueued, error) {
	req := messaging.Request{To: r.To, Text: r.Text, Data: r.Data, Report: r.Report}
	if r.IdempotencyKey != "" {
		req.ID = apiKeyPrefix + r.IdempotencyKey
	}
	q, err := b.ops.SendSMS(ctx, req)
	if err != nil {
		return localapi.SMSQueued{}, apiError(err)
	}
	return localapi.SMSQueued{ID: q.ID, Parts: q.Parts, Duplicate: q.Duplicate}, nil
}

func (b apiBackend) SMS(_ context.Context, id string) (localapi.SMSStatus, error) {
	it, err := b.ops.SMS(id)
	if err != nil {
		return localapi.SMSStatus{}, apiError(err)
	}
	return smsStatusOf(it), nil
}

func (b apiBackend) Events(_ context.Context, after uint64, limit int) ([]localapi.Event, error) {
	return b.feed.read(after, limit)
}

func (b apiBackend) WaitEvents(ctx context.Context, after uint64) error {
	return b.feed.wait(ctx, after)
}

func (b apiBackend) AT(ctx context.Context, r localapi.ATRequest) (localapi.ATResponse, error) {
	if !b.at {
		return localapi.ATResponse{}, fmt.Errorf("%w: AT commands are off; set [api] at_commands = true", localapi.ErrForbidden)
	}
	lines, err := b.ops.AT(ctx, r.Command, time.Duration(r.TimeoutMS)*time.Millisecond, r.Force)
	resp := localapi.ATResponse{Lines: lines, Result: "OK", OK: err == nil}
	if err == nil {
		return resp, nil
	}
	// A final result other than OK is the modem's answer, not a failure
	// of the request.
	var cme *at.CMEError
	var cms *at.CMSError
	var res *at.ResultError
	switch {
	case errors.As(err, &cme), errors.As(err, &cms), errors.As(err, &res), errors.Is(err, at.ErrError):
		resp.Result = finalOf(err, cme, cms, res)
		return resp, nil
	}
	return localapi.ATResponse{}, apiError(err)
}

func finalOf(err error, cme *at.CMEError, cms *at.CMSError, res *at.ResultError) string {
	switch {
	case cme != nil:
		return cme.Error()
	case cms != nil:
		return cms.Error()
	case res != nil:
		return res.Error()
	}
	return at.ErrError.Error()
}

func (b apiBackend) Recover(_ context.Context, step string) error {
	if err := b.ops.Recover(step); err != nil {
		// The supervisor says why: unknown step, prerequisites, budget.
		switch msg := err.Error(); {
		case strings.Contains(msg, "unknown step"):
			return fmt.Errorf("%w: %v", localapi.ErrBadRequest, err)
		case strings.Contains(msg, "budget") || strings.Contains(msg, "next allowed") || strings.Contains(msg, "already"):
			return fmt.Errorf("%w: %v", localapi.ErrLimited, err)
		default:
			return fmt.Errorf("%w: %v", localapi.ErrForbidden, err)
		}
	}
	return nil
}

// apiError maps the agent's errors onto the API's statuses.
func apiError(err error) error {
	var kind error
	switch {
	case errors.Is(err, sms.ErrInvalidNumber), errors.Is(err, sms.ErrTooLong), errors.Is(err, sms.ErrEmpty):
		kind = localapi.ErrBadRequest
	case errors.Is(err, ErrKeyReused):
		kind = localapi.ErrConflict
	case errors.Is(err, ErrRefused):
		kind = localapi.ErrForbidden
	case errors.Is(err, ratelimit.ErrLimited):
		kind = localapi.ErrLimited
	case errors.Is(err, store.ErrFull), errors.Is(err, ErrNoSession), errors.Is(err, at.ErrClosed):
		kind = localapi.ErrUnavailable
	case errors.Is(err, store.ErrNotFound):
		kind = localapi.ErrNotFound
	case errors.Is(err, at.ErrTimeout):
		kind = localapi.ErrTimeout
	default:
		return err
	}
	return fmt.Errorf("%w: %v", kind, err)
}

// apiSocket is where the local API listens, "" for nowhere.
func (d *daemon) apiSocket() string {
	switch {
	case !d.cfg.API.Enabled:
		return ""
	case d.cfg.API.Socket != "":
		return d.cfg.API.Socket
	case d.o.RuntimeDir != "":
		return filepath.Join(d.o.RuntimeDir, localapi.SocketName)
	}
	return ""
}

// startAPI serves the local API until ctx ends; done is closed then.
func (d *daemon) startAPI(ctx context.Context) (done <-chan struct{}, err error) {
	ch := make(chan struct{})
	path := d.apiSocket()
	if path == "" {
		close(ch)
		return ch, nil
	}
	srv, err := localapi.Listen(localapi.Config{
		Backend:     apiBackend{ops: d, feed: d.feed, at: d.cfg.API.ATCommands},
		Path:        path,
		Group:       d.cfg.API.Group,
		Logger:      d.log,
		AfterQueued: d.o.APIAfterQueued,
	})
	if err != nil {
		return nil, fmt.Errorf("agent: local API: %w", err)
	}
	d.log.Info("agent: local API listening", "socket", path, "at_commands", d.cfg.API.ATCommands)
	go func() {
		defer close(ch)
		if err := srv.Serve(ctx); err != nil {
			d.setErr(err)
			d.log.Error("agent: local API stopped", "err", err)
		}
	}()
	return ch, nil
}
