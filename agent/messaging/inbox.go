// Package messaging is the agent's SMS path between the modem and the
// durable store: the inbox takes MT messages off the SIM without losing
// any, the outbox sends MO requests with retries and rate limits.
//
// The inbox order is the one that cannot lose a message (the store's side
// of it is in agent/store/inbox.go): read
// from the SIM → commit to the store with fsync → delete from the SIM →
// hand to the publisher → mark published. A crash anywhere repeats a step
// rather than skipping one; repeats are absorbed by the store, which knows
// every message by its stable id.
package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"cellagent/agent/bootclock"
	"cellagent/agent/store"
	"cellagent/modem/at"
	"cellagent/modem/clock"
	"cellagent/modem/sms"
	"cellagent/transport/mqtt"
)

// Port is the part of the AT engine the SMS path uses; *at.AT implements
// it.
type Port interface {
	sms.Commander
	AddIndication(prefix string, h at.Handler) (remove func())
}

// Inbound is an MT message as the inbox stores it and publishers receive
// it: the sms/in payload of the MQTT schema itself (transport/mqtt's SMSIn,
// documented in its SCHEMA.md), so what is stored is what is published and
// no second struct has to be kept in step. ID is stable, so consumers
// de-duplicate redeliveries by it.
type Inbound = mqtt.SMSIn

// part is how a piece of a concatenated message waits in the store: the
// raw PDU is the truth, decoded again when the assembler is rebuilt.
type part struct {
	PDU      string    `json:"pdu"`
	Received time.Time `json:"received"`
	// Mark dates Received on the boot clock too, so that a step of the
	// wall clock before the part is restored does not cut its wait for
	// the other parts short, or stretch it.
	Mark bootclock.Mark `json:"mark,omitzero"`
}

// Publisher hands an inbox message on (to MQTT, in the daemon). It returns
// nil only once the message is safely accepted downstream.
type Publisher func(ctx context.Context, msg Inbound) error

// InboxConfig configures an Inbox.
type InboxConfig struct {
	Store *store.Store
	// Publish is optional: without it messages wait in the store.
	Publish Publisher
	// Reassembly is how long the parts of a concatenated message wait for
	// the rest before they are delivered as incomplete (default 24h, as
	// SMSCs retry a failed part for about that long).
	Reassembly time.Duration
	// Sweep is the period of the safety sweep of the SIM, which catches
	// messages whose +CMTI was lost (default 5 min).
	Sweep  time.Duration
	Logger *slog.Logger
	// Clock times the reassembly (clock.System when nil).
	Clock clock.Clock
	// Boot is the boot clock (bootclock.System when nil).
	Boot bootclock.Source
}

// Inbox moves MT messages from the SIM into the store.
type Inbox struct {
	cfg  InboxConfig
	port Port
	log  *slog.Logger
	asm  *sms.Assembler
	kick chan struct{}

	mu     sync.Mutex
	direct []sms.Message // +CMT and +CDS, which never touch the SIM
}

// NewInbox prepares an inbox; Run does the work.
func NewInbox(p Port, cfg InboxConfig) *Inbox {
	if cfg.Reassembly <= 0 {
		cfg.Reassembly = 24 * time.Hour
	}
	if cfg.Sweep <= 0 {
		cfg.Sweep = 5 * time.Minute
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Inbox{
		cfg:  cfg,
		port: p,
		log:  cfg.Logger,
		asm:  sms.NewAssembler(cfg.Reassembly, cfg.Clock),
		kick: make(chan struct{}, 1),
	}
}

// Run sweeps the SIM at once, then on every new-message indication and
// periodically, until ctx ends or the port fails. It returns the error
// that stopped it; the daemon reopens the port and runs it again.
func (in *Inbox) Run(ctx context.Context) error {
	for _, p := range []string{"+CMTI", "+CDSI"} {
		defer in.port.AddIndication(p, func([]string) { in.wake() })()
	}
	for _, p := range []string{"+CMT", "+CDS"} {
		parse := sms.ParseCMT
		if p == "+CDS" {
			parse = sms.ParseCDS
		}
		defer in.port.AddIndication(p, func(lines []string) {
			in.mu.Lock()
			in.direct = append(in.direct, parse(lines))
			in.mu.Unlock()
			in.wake()
		})()
	}
	if err := in.restoreParts(); err != nil {
		return err
	}
	tick := time.NewTicker(in.cfg.Sweep)
	defer tick.Stop()
	for {
		switch err := in.cycle(ctx); {
		case err == nil:
		case errors.Is(err, at.ErrClosed), ctx.Err() != nil:
			return err
		case errors.Is(err, store.ErrFull):
			in.log.Warn("inbox: store full; messages stay on the SIM until it drains", "err", err)
		default:
			// A failed command (a timeout, a +CMS ERROR) is retried on the
			// next indication or sweep; the messages wait on the SIM.
			in.log.Warn("inbox: round failed, will retry", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-in.kick:
		case <-tick.C:
		}
	}
}

func (in *Inbox) wake() {
	select {
	case in.kick <- struct{}{}:
	default:
	}
}

// cycle is one round: direct messages, the SIM, expired reassemblies, the
// publisher. A store that is full stops the round with the messages still
// on the SIM, where they are safe.
func (in *Inbox) cycle(ctx context.Context) error {
	in.mu.Lock()
	direct := in.direct
	in.direct = nil
	in.mu.Unlock()
	for i, m := range direct {
		if err := in.take(m, in.cfg.Clock.Now()); err != nil {
			// These exist only here: put the rest back, ahead of any that
			// arrived meanwhile, for the next round.
			in.mu.Lock()
			in.direct = append(direct[i:len(direct):len(direct)], in.direct...)
			in.mu.Unlock()
			return err
		}
	}
	if err := in.Sweep(ctx); err != nil {
		return err
	}
	if err := in.expire(); err != nil {
		return err
	}
	return in.publish(ctx)
}

// Sweep reads every message on the SIM, commits it and deletes it.
func (in *Inbox) Sweep(ctx context.Context) error {
	entries, err := sms.List(ctx, in.port, sms.All)
	if err != nil {
		return fmt.Errorf("inbox: list SIM messages: %w", err)
	}
	for _, e := range entries {
		if e.Stat == sms.StoUnsent || e.Stat == sms.StoSent {
			// Our own drafts (AT+CMGW), not incoming messages.
			continue
		}
		if e.Index >= 0 && withoutPDU(e) {
			// The header arrived but its PDU line did not (a framing
			// fault): the message was never read, so it must not be
			// deleted; the next sweep reads it whole.
			in.log.Warn("inbox: SMS listed without its PDU, left on the SIM", "index", e.Index, "err", e.Err)
			continue
		}
		if err := in.take(e.Message, in.cfg.Clock.Now()); err != nil {
			return err
		}
		if e.Index < 0 {
			// A PDU the listing could not tie to a slot: kept, but a
			// delete by guesswork could hit another message.
			in.log.Warn("inbox: SMS without a storage index kept but not deleted", "id", e.ID)
			continue
		}
		if err := sms.Delete(ctx, in.port, e.Index); err != nil {
			return fmt.Errorf("inbox: delete SIM message %d (already stored as %s): %w", e.Index, e.ID, err)
		}
	}
	return nil
}

// take commits one received PDU durably. Only when it returns nil may the
// PDU leave the SIM.
func (in *Inbox) take(m sms.Message, received time.Time) error {
	switch {
	case m.Err == nil && m.Kind == sms.StatusReport && m.Report != nil:
		return in.report(m)
	case m.Err == nil && m.Kind == sms.Deliver && m.Concat != nil && m.Concat.Total > 1 &&
		m.Concat.Seq >= 1 && m.Concat.Seq <= m.Concat.Total:
		return in.takePart(m, received)
	}
	if m.Err != nil {
		in.log.Warn("inbox: undecodable SMS kept raw", "id", m.ID, "err", m.Err)
	}
	msg := inbound(assembledOf(m), received)
	rec, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("inbox: encode %s: %w", msg.ID, err)
	}
	added, err := in.cfg.Store.Commit(msg.ID, rec)
	if err != nil {
		return fmt.Errorf("inbox: commit %s: %w", msg.ID, err)
	}
	if added {
		in.log.Info("inbox: SMS stored", "id", msg.ID, "from", msg.From)
	}
	return nil
}

func (in *Inbox) takePart(m sms.Message, received time.Time) error {
	rec, err := json.Marshal(part{PDU: m.PDU, Received: received, Mark: bootclock.Read(received, in.cfg.Boot)})
	if err != nil {
		return fmt.Errorf("inbox: encode part %s: %w", m.ID, err)
	}
	key := groupKey(m)
	added, err := in.cfg.Store.PutPart(key, store.Part{ID: m.ID, Seq: m.Concat.Seq, Rec: rec, Received: received})
	if err != nil {
		return fmt.Errorf("inbox: store part %d/%d of %s: %w", m.Concat.Seq, m.Concat.Total, key, err)
	}
	if !added {
		// Known already: a re-read after a crash. Feeding it to the
		// assembler again could restart a message that was already joined.
		return nil
	}
	if a, ok := in.asm.Add(m, received); ok {
		return in.commitGroup(key, a, received)
	}
	return nil
}

func (in *Inbox) commitGroup(key string, a sms.Assembled, received time.Time) error {
	msg := inbound(a, received)
	// CommitGroup forgets every part held under key, but the assembler
	// ignores a second SMS with a part number it has (a sender reusing an
	// 8-bit reference while an older message still waits): carry those
	// along raw, or they would leave the store and the SIM unrecorded.
	held, err := in.cfg.Store.Parts(key)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("inbox: parts of %s: %w", key, err)
	}
	used := map[string]bool{}
	for _, p := range a.Parts {
		used[p.ID] = true
	}
	extra := 0
	for _, p := range held {
		if used[p.ID] {
			continue
		}
		var pr part
		if err := json.Unmarshal(p.Rec, &pr); err != nil {
			return fmt.Errorf("inbox: held part %s: %w", p.ID, err)
		}
		msg.PDUs = append(msg.PDUs, pr.PDU)
		extra++
	}
	if extra > 0 {
		note := fmt.Sprintf("%d more part(s) with the same concatenation reference kept raw in pdus (the sender reused the reference)", extra)
		msg.Error = strings.TrimPrefix(msg.Error+"; "+note, "; ")
		in.log.Warn("inbox: concatenation reference reused; extra parts kept raw", "key", key, "extra", extra)
	}
	rec, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("inbox: encode %s: %w", msg.ID, err)
	}
	if _, err := in.cfg.Store.CommitGroup(key, msg.ID, rec); err != nil {
		return fmt.Errorf("inbox: commit joined message %s: %w", msg.ID, err)
	}
	in.log.Info("inbox: concatenated SMS stored", "id", msg.ID, "from", msg.From, "parts", a.Total, "missing", a.Missing)
	return nil
}

// report marks the outbox message the status report is about. A report
// that matches nothing (sent by an earlier installation, or older than the
// report window) is logged and dropped: there is nobody to tell.
func (in *Inbox) report(m sms.Message) error {
	r := m.Report
	if !r.Final() {
		in.log.Debug("inbox: interim status report", "mr", r.MR, "status", r.Status)
		return nil
	}
	id, err := in.cfg.Store.MarkDeliveredByRef(r.MR, store.Report{Delivered: r.Delivered(), Status: r.Status})
	switch {
	case errors.Is(err, store.ErrNoMatch):
		in.log.Info("inbox: status report for no known message", "mr", r.MR, "status", r.Status)
		return nil
	case err != nil:
		return fmt.Errorf("inbox: status report for reference %d: %w", r.MR, err)
	}
	in.log.Info("inbox: status report", "id", id, "mr", r.MR, "delivered", r.Delivered(), "status", r.Status)
	return nil
}

// restoreParts rebuilds the assembler from the parts in the store, with
// their original receive times, so timeouts survive restarts too. A time
// of this boot is corrected for a step of the wall clock since; one of
// an earlier boot cannot be, and if it is in the future it counts as now.
func (in *Inbox) restoreParts() error {
	groups, err := in.cfg.Store.PartGroups()
	if err != nil {
		return fmt.Errorf("inbox: restore parts: %w", err)
	}
	now := in.cfg.Clock.Now()
	mark := bootclock.Read(now, in.cfg.Boot)
	for _, g := range groups {
		parts, err := in.cfg.Store.Parts(g.Key)
		if err != nil {
			return fmt.Errorf("inbox: restore parts of %s: %w", g.Key, err)
		}
		for _, p := range parts {
			var pr part
			if err := json.Unmarshal(p.Rec, &pr); err != nil {
				return fmt.Errorf("inbox: restore part %s: %w", p.ID, err)
			}
			if step, err := pr.Mark.Step(mark); err == nil {
				pr.Received = pr.Received.Add(step)
			}
			if pr.Received.After(now) {
				pr.Received = now
			}
			if a, ok := in.asm.Add(sms.DecodeHex(pr.PDU), pr.Received); ok {
				if err := in.commitGroup(g.Key, a, pr.Received); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// expire delivers what arrived of messages whose other parts are overdue.
func (in *Inbox) expire() error {
	for _, a := range in.asm.Expire() {
		if len(a.Parts) == 0 {
			continue
		}
		if err := in.commitGroup(groupKey(a.Parts[0]), a, in.cfg.Clock.Now()); err != nil {
			return err
		}
	}
	return nil
}

// publish hands pending messages to the publisher in commit order and
// marks each one published only after the publisher accepted it.
func (in *Inbox) publish(ctx context.Context) error {
	if in.cfg.Publish == nil {
		return nil
	}
	for {
		items, err := in.cfg.Store.Pending(32)
		if err != nil {
			return fmt.Errorf("inbox: pending: %w", err)
		}
		if len(items) == 0 {
			return nil
		}
		for _, it := range items {
			var msg Inbound
			if err := json.Unmarshal(it.Rec, &msg); err != nil {
				return fmt.Errorf("inbox: stored message %s: %w", it.ID, err)
			}
			if err := in.cfg.Publish(ctx, msg); err != nil {
				// Not lost: it stays pending and goes out next round.
				in.log.Warn("inbox: publish failed, will retry", "id", it.ID, "err", err)
				return nil
			}
			if err := in.cfg.Store.MarkPublished(it.ID); err != nil {
				return fmt.Errorf("inbox: mark %s published: %w", it.ID, err)
			}
		}
	}
}

// withoutPDU reports a listing entry whose header came without its PDU
// line: sms.ParseCMGL keeps the header line itself as the entry's PDU.
func withoutPDU(e sms.Entry) bool {
	return e.Err != nil && strings.HasPrefix(e.PDU, "+CMGL:")
}

// groupKey names a concatenated message: the same fields the assembler
// keys on.
func groupKey(m sms.Message) string {
	c := m.Concat
	return fmt.Sprintf("%s|%d|%d|%d", m.From, c.RefBits, c.Ref, c.Total)
}

func assembledOf(m sms.Message) sms.Assembled {
	a := sms.Assembled{ID: m.ID, From: m.From, SCTS: m.SCTS, Alphabet: m.Alphabet, Text: m.Text, Data: m.Data, Total: 1, Parts: []sms.Message{m}, Err: m.Err}
	return a
}

func inbound(a sms.Assembled, received time.Time) Inbound {
	msg := Inbound{
		ID:       a.ID,
		From:     a.From,
		SCTS:     a.SCTS,
		Received: received.UTC(),
		Text:     a.Text,
		Data:     a.Data,
		Parts:    a.Total,
		Missing:  a.Missing,
	}
	if a.Err == nil {
		msg.Alphabet = a.Alphabet.String()
	} else {
		msg.Error = a.Err.Error()
	}
	for _, p := range a.Parts {
		msg.PDUs = append(msg.PDUs, p.PDU)
	}
	return msg
}
