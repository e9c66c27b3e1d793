package agent

import (
	"context"
	"encoding/json"
	"time"

	"cellagent/agent/store"
	"cellagent/transport/mqtt"
)

// runTelemetry polls the modem and publishes by exception: a sample goes
// out when it differs from the last one published beyond the dead-bands,
// at the heartbeat, or on a cmd/status request.
func (d *daemon) runTelemetry(ctx context.Context) {
	var last *mqtt.Telemetry
	var lastAt time.Time
	force := false
	for {
		d.beat.Store(time.Now().UnixNano())
		ts := d.tele.Load()
		t := d.poll(ctx)
		now := d.now()
		ok, reason := shouldReport(ts.db, last, lastAt, t, now)
		if force {
			ok, reason = true, "request"
		}
		if ok {
			t.TS = now.Unix()
			t.Health = d.health(now)
			t.Bearer = d.bearerTelemetry()
			if err := d.client.QueueTelemetry(t); err != nil {
				d.log.Error("agent: telemetry not queued", "err", err)
			} else {
				d.log.Debug("agent: telemetry queued", "reason", reason)
				last, lastAt = &t, now
			}
		}
		timer := time.NewTimer(ts.poll)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-d.kickTele:
			force = true
		case <-timer.C:
			force = false
		}
		timer.Stop()
	}
}

// poll reads the modem's state; with no session the sample is empty,
// which reads as "registration unknown" downstream.
func (d *daemon) poll(ctx context.Context) mqtt.Telemetry {
	s, err := d.keeper.Current()
	if err != nil {
		return mqtt.Telemetry{}
	}
	qctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	st := s.Modem.StatusWith(qctx, s.Identity)
	d.data.readTime(qctx, s.Modem)
	d.mu.Lock()
	d.modem, d.modemAt = &st, d.now()
	d.mu.Unlock()
	return sample(st)
}

func (d *daemon) bearerTelemetry() *mqtt.Bearer {
	if d.data.bearer == nil {
		return nil
	}
	s := d.data.bearer.Snapshot()
	b := &mqtt.Bearer{State: string(s.State), If: s.Interface, Addr: s.Addresses, RX: s.RxBytes, TX: s.TxBytes, Fail: s.LastFailure}
	if s.Cause != "" {
		b.Fail += " (" + s.Cause + ")"
	}
	return b
}

func (d *daemon) health(now time.Time) *mqtt.Health {
	h := &mqtt.Health{Uptime: int64(now.Sub(d.started) / time.Second)}
	h.EventsQueued, _ = d.st.Events().Len()
	h.TelemetryQueued, _ = d.st.Telemetry().Len()
	h.TelemetryDropped, _ = d.st.Telemetry().Dropped()
	if d.sup != nil {
		h.Recoveries = d.sup.ActionsToday()
	}
	d.mu.Lock()
	h.LastError = d.lastErr
	d.mu.Unlock()
	if len(h.LastError) > 120 {
		h.LastError = h.LastError[:120]
	}
	return h
}

func decodeItem(rec []byte) (store.OutboxItem, error) {
	var it store.OutboxItem
	err := json.Unmarshal(rec, &it)
	return it, err
}
