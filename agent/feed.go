package agent

import (
	"context"
	"encoding/json"
	"sync"

	"cellagent/agent/event"
	"cellagent/agent/messaging"
	"cellagent/agent/store"
	"cellagent/transport/localapi"
)

// feed is the store's log for local readers, with a broadcast of every
// append so that streams waiting at the end wake up.
type feed struct {
	q *store.Queue

	mu      sync.Mutex
	changed chan struct{}
}

func newFeed(q *store.Queue) *feed { return &feed{q: q, changed: make(chan struct{})} }

// push appends e, on disk when it returns.
func (f *feed) push(e localapi.Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := f.q.Push(b); err != nil {
		return err
	}
	f.mu.Lock()
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	return nil
}

func (f *feed) read(after uint64, limit int) ([]localapi.Event, error) {
	items, err := f.q.After(after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]localapi.Event, 0, len(items))
	for _, it := range items {
		var e localapi.Event
		if err := json.Unmarshal(it.Rec, &e); err != nil {
			// Still a record, so a reader's cursor moves past it.
			e = localapi.Event{Type: localapi.EventNotice, Notice: &localapi.Notice{
				Kind: "feed", Level: "error", Msg: "record unreadable: " + err.Error()}}
		}
		e.Seq = it.Seq
		out = append(out, e)
	}
	return out, nil
}

// wait returns once a record after the cursor exists, or ctx ends.
func (f *feed) wait(ctx context.Context, after uint64) error {
	for {
		f.mu.Lock()
		ch := f.changed
		f.mu.Unlock()
		last, err := f.q.Last()
		if err != nil {
			return err
		}
		if last > after {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

func inboundEvent(m messaging.Inbound) localapi.Event {
	return localapi.Event{Type: localapi.EventSMSIn, TS: m.Received, SMS: &localapi.InboundSMS{
		ID: m.ID, From: m.From, SCTS: m.SCTS, Received: m.Received, Alphabet: m.Alphabet, Text: m.Text,
		Data: m.Data, Parts: m.Parts, Missing: m.Missing, Error: m.Error, PDUs: m.PDUs,
	}}
}

func smsStatusOf(it store.OutboxItem) localapi.SMSStatus {
	return localapi.SMSStatus{V: localapi.V, ID: it.ID, State: string(it.State), Refs: it.Refs, Delivered: it.Delivered,
		Attempts: it.Attempts, Code: it.Code, Reason: it.Reason, LastError: it.LastErr,
		Created: it.Created, Updated: it.Updated, SentAt: it.SentAt}
}

func noticeEvent(e event.Event) localapi.Event {
	return localapi.Event{Type: localapi.EventNotice, TS: e.Time.UTC(),
		Notice: &localapi.Notice{Kind: e.Type, Level: e.Level, Msg: e.Msg, Attrs: e.Attrs}}
}
