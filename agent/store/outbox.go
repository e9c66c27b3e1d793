package store

import (
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// State is where an outbox item is in its life:
//
//	queued ──MarkSending──▶ sending ──MarkSent──▶ sent ──report──▶ delivered
//	  ▲  │                   │  │                        └─report──▶ failed
//	  │  └──MarkFailed───────┼──┴──MarkFailed──▶ failed
//	  └──────MarkRetry───────┘
//
// An item found in sending when the store opens was interrupted by a crash
// mid-send; it goes back to queued. Whether the modem had already sent it is
// unknowable, so such an SMS may be sent twice: the outbox is at-least-once.
type State string

// Outbox states.
const (
	Queued    State = "queued"
	Sending   State = "sending"
	Sent      State = "sent"
	Delivered State = "delivered"
	Failed    State = "failed"
)

func (s State) finished() bool { return s == Sent || s == Delivered || s == Failed }

// TransitionError reports an outbox state change that is not allowed.
type TransitionError struct {
	ID   string
	From State
	To   State
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("outbox item %s is %s, cannot become %s", e.ID, e.From, e.To)
}

// OutboxItem is an MO send request and its progress.
type OutboxItem struct {
	ID        string    `json:"id"`
	Seq       uint64    `json:"seq"`
	State     State     `json:"state"`
	Rec       []byte    `json:"rec"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	NotBefore time.Time `json:"not_before,omitzero"` // back-off: not due before this
	Attempts  int       `json:"attempts"`            // times it entered sending
	LastErr   string    `json:"last_err,omitempty"`
	Refs      []int     `json:"refs,omitempty"`      // message references, one per part
	Delivered []int     `json:"delivered,omitempty"` // refs with a positive status report
	SentAt    time.Time `json:"sent_at,omitzero"`
	Code      int       `json:"code,omitempty"` // failure: +CMS ERROR or TP-ST
	Reason    string    `json:"reason,omitempty"`
}

// Report is the final outcome a status report gives for one message
// reference. Callers pass only final reports (TP-ST "completed" or
// "permanent error"/"temporary error, SC gave up"), not "still trying".
type Report struct {
	Delivered bool
	Status    int // TP-ST as received, kept on failure
}

// Enqueue stores a send request and returns its new id once it is on disk,
// so the agent may acknowledge the request. Refuses with ErrFull when
// MaxOutbox items are queued or sending.
func (s *Store) Enqueue(rec []byte) (id string, err error) {
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", wrap("outbox enqueue", bOutbox, err)
	}
	// The random part keeps ids unique if the store file is ever recreated
	// while operators still hold old ids.
	id, _, err = s.enqueue("", hex.EncodeToString(r[:]), rec)
	return id, err
}

// EnqueueID is Enqueue with the caller's request id, for requests that can
// arrive twice (an MQTT QoS 1 command is redelivered if its ack was lost): a
// known id — in any state, until pruned — returns added=false.
func (s *Store) EnqueueID(id string, rec []byte) (added bool, err error) {
	if err := checkKey("id", id); err != nil {
		return false, wrap("outbox enqueue", bOutbox, err)
	}
	_, added, err = s.enqueue(id, "", rec)
	return added, err
}

// enqueue adds an item under id, or under an id made of the sequence number
// and suffix when id is empty.
func (s *Store) enqueue(id, suffix string, rec []byte) (string, bool, error) {
	const op = "outbox enqueue"
	if err := s.checkPayload(rec); err != nil {
		return "", false, wrap(op, bOutbox, err)
	}
	added := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		out := tx.Bucket(bOutbox)
		if id != "" && out.Get([]byte(id)) != nil {
			return nil
		}
		n, err := count(tx, cOutbox)
		if err != nil {
			return err
		}
		if n >= uint64(s.opts.MaxOutbox) {
			return fmt.Errorf("%w: %d of %d messages waiting to be sent", ErrFull, n, s.opts.MaxOutbox)
		}
		seq, err := out.NextSequence()
		if err != nil {
			return err
		}
		if id == "" {
			id = fmt.Sprintf("mo-%d-%s", seq, suffix)
		}
		now := s.now()
		it := OutboxItem{ID: id, Seq: seq, State: Queued, Rec: rec, Created: now, Updated: now}
		if err := s.putItem(tx, &it); err != nil {
			return err
		}
		if err := tx.Bucket(bOutQueue).Put(queueKey(&it), []byte(it.ID)); err != nil {
			return err
		}
		_, err = addCount(tx, cOutbox, 1)
		added = err == nil
		return err
	})
	if err != nil {
		return "", false, wrap(op, bOutbox, err)
	}
	if added {
		// An id may come back after its first item was pruned, perhaps
		// for another destination.
		s.groups.forget(id)
	}
	return id, added, nil
}

// Get returns the item id, or ErrNotFound (also after pruning).
func (s *Store) Get(id string) (OutboxItem, error) {
	var it OutboxItem
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		it, err = getItem(tx, id)
		return err
	})
	return it, wrap("outbox get", bOutbox, err)
}

// Next returns the queued item to send at now: among the first-accepted
// item of each group (see Options.OutboxGroup), the one accepted first
// whose NotBefore is not after now; ok=false if none is. It does not change
// the item: the single sender loop calls MarkSending next.
func (s *Store) Next(now time.Time) (it OutboxItem, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		heads, err := s.queueHeads(tx)
		if err != nil {
			return err
		}
		for _, h := range heads {
			if !h.notBefore.After(now) {
				it, err = getItem(tx, h.id)
				ok = err == nil
				return err
			}
		}
		return nil
	})
	return it, ok, wrap("outbox next", bOutQueue, err)
}

// NextDue returns when the earliest item Next may return becomes due,
// ok=false if the queue is empty; the sender sleeps until then (or until
// Enqueue wakes it).
func (s *Store) NextDue() (due time.Time, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		heads, err := s.queueHeads(tx)
		if err != nil {
			return err
		}
		for _, h := range heads {
			if !ok || h.notBefore.Before(due) {
				due, ok = h.notBefore, true
			}
		}
		return nil
	})
	return due, ok, wrap("outbox next due", bOutQueue, err)
}

// queued is a queue entry as its key and value give it.
type queued struct {
	seq       uint64
	notBefore time.Time
	id        string
}

// groupCache remembers the group of each queued item, so that finding
// the heads reads the queue's keys and values only, not every item: the
// group comes from the payload, which does not change.
type groupCache struct {
	mu  sync.Mutex
	gen uint64
	m   map[string]*groupEntry
}

func (c *groupCache) forget(id string) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}

type groupEntry struct {
	group string
	gen   uint64
}

// queueHeads returns the first-accepted queued item of each group, in
// acceptance order. It reads the whole queue, which MaxOutbox bounds.
func (s *Store) queueHeads(tx *bolt.Tx) ([]queued, error) {
	c := &s.groups
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*groupEntry{}
	}
	c.gen++
	heads := map[string]queued{}
	err := tx.Bucket(bOutQueue).ForEach(func(k, v []byte) error {
		nb, err := keyTime(k)
		if err != nil {
			return err
		}
		if len(k) != 16 {
			return fmt.Errorf("corrupt queue key: %d bytes, want 16", len(k))
		}
		e := c.m[string(v)]
		if e == nil {
			it, err := getItem(tx, string(v))
			if err != nil {
				return err
			}
			e = &groupEntry{group: "\x00" + it.ID}
			if s.opts.OutboxGroup != nil {
				e.group = s.opts.OutboxGroup(it.Rec)
			}
			c.m[string(v)] = e
		}
		e.gen = c.gen
		q := queued{seq: binary.BigEndian.Uint64(k[8:]), notBefore: nb}
		if h, ok := heads[e.group]; !ok || q.seq < h.seq {
			q.id = string(v)
			heads[e.group] = q
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for id, e := range c.m {
		if e.gen != c.gen {
			delete(c.m, id)
		}
	}
	out := make([]queued, 0, len(heads))
	for _, h := range heads {
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b queued) int { return cmp.Compare(a.seq, b.seq) })
	return out, nil
}

// MarkSending: queued → sending, counting the attempt.
func (s *Store) MarkSending(id string) error {
	return s.transition("outbox mark sending", id, Sending, []State{Queued}, func(tx *bolt.Tx, it *OutboxItem) error {
		if err := tx.Bucket(bOutQueue).Delete(queueKey(it)); err != nil {
			return err
		}
		it.Attempts++
		return nil
	})
}

// MarkRetry: sending → queued, not due before notBefore (zero: at once),
// after a transient error lastErr. The item keeps its place in its group's
// FIFO whatever notBefore is.
func (s *Store) MarkRetry(id string, notBefore time.Time, lastErr string) error {
	return s.transition("outbox mark retry", id, Queued, []State{Sending}, func(tx *bolt.Tx, it *OutboxItem) error {
		it.NotBefore = notBefore
		it.LastErr = lastErr
		return tx.Bucket(bOutQueue).Put(queueKey(it), []byte(it.ID))
	})
}

// MarkSent: sending → sent with the message reference of each part (0..255).
func (s *Store) MarkSent(id string, refs []int) error {
	const op = "outbox mark sent"
	if len(refs) == 0 {
		return wrap(op, bOutbox, fmt.Errorf("%w: item %s: no message references", ErrInvalid, id))
	}
	for _, r := range refs {
		if r < 0 || r > 255 {
			return wrap(op, bOutbox, fmt.Errorf("%w: item %s: message reference %d, want 0..255", ErrInvalid, id, r))
		}
	}
	return s.transition(op, id, Sent, []State{Sending}, func(tx *bolt.Tx, it *OutboxItem) error {
		it.Refs = slices.Clone(refs)
		it.SentAt = s.now()
		for _, r := range refs {
			if err := tx.Bucket(bOutRefs).Put(refKey(r, it.SentAt, it.ID), nil); err != nil {
				return err
			}
		}
		_, err := addCount(tx, cOutbox, -1)
		return err
	})
}

// MarkFailed: queued or sending → failed, permanently, with the modem's
// error code (e.g. +CMS ERROR) and a reason.
func (s *Store) MarkFailed(id string, code int, reason string) error {
	return s.transition("outbox mark failed", id, Failed, []State{Queued, Sending}, func(tx *bolt.Tx, it *OutboxItem) error {
		if it.State == Queued {
			if err := tx.Bucket(bOutQueue).Delete(queueKey(it)); err != nil {
				return err
			}
		}
		it.Code, it.Reason = code, reason
		_, err := addCount(tx, cOutbox, -1)
		return err
	})
}

// MarkDeliveredByRef applies a status report for message reference ref to the
// most recent sent item with that reference sent within ReportWindow (refs
// wrap at 256, so older matches would be guesses). The item becomes delivered
// once every part is reported delivered, failed on the first failure report.
// It returns the item's id, or ErrNoMatch.
func (s *Store) MarkDeliveredByRef(ref int, r Report) (id string, err error) {
	const op = "outbox status report"
	if ref < 0 || ref > 255 {
		return "", wrap(op, bOutRefs, fmt.Errorf("%w: message reference %d, want 0..255", ErrInvalid, ref))
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		now := s.now()
		c := tx.Bucket(bOutRefs).Cursor()
		// The most recent use of ref is the last key with prefix ref: the key
		// just before the first key of ref+1.
		var k []byte
		if ref < 255 {
			k, _ = c.Seek([]byte{byte(ref + 1)})
		}
		if k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		if k == nil || k[0] != byte(ref) {
			return fmt.Errorf("%w: no sent message with reference %d", ErrNoMatch, ref)
		}
		sentAt, err := keyTime(k[1:])
		if err != nil {
			return err
		}
		if sentAt.Before(now.Add(-s.opts.ReportWindow)) {
			return fmt.Errorf("%w: reference %d last used %s ago, beyond the %s report window",
				ErrNoMatch, ref, now.Sub(sentAt).Round(time.Second), s.opts.ReportWindow)
		}
		id = string(k[9:])
		it, err := getItem(tx, id)
		if err != nil {
			return err
		}
		if it.State != Sent {
			return fmt.Errorf("ref index points at item %s in state %s: store inconsistent", id, it.State)
		}
		if err := tx.Bucket(bOutRefs).Delete(k); err != nil {
			return err
		}
		next := Delivered
		if r.Delivered {
			if !slices.Contains(it.Delivered, ref) {
				it.Delivered = append(it.Delivered, ref)
			}
			if !coversAll(it.Delivered, it.Refs) {
				return s.putItem(tx, &it)
			}
		} else {
			next = Failed
			it.Code = r.Status
			it.Reason = fmt.Sprintf("status report for reference %d: not delivered (TP-ST 0x%02X)", ref, r.Status)
		}
		if err := s.deleteRefs(tx, &it); err != nil {
			return err
		}
		if err := tx.Bucket(bOutDone).Delete(timeKey(it.Updated, []byte(it.ID))); err != nil {
			return err
		}
		it.State, it.Updated = next, now
		if err := tx.Bucket(bOutDone).Put(timeKey(it.Updated, []byte(it.ID)), nil); err != nil {
			return err
		}
		if err := s.journal(tx, &it); err != nil {
			return err
		}
		return s.putItem(tx, &it)
	})
	if err != nil {
		return "", wrap(op, bOutRefs, err)
	}
	return id, nil
}

func coversAll(have, want []int) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func (s *Store) transition(op, id string, to State, from []State, fn func(*bolt.Tx, *OutboxItem) error) error {
	return wrap(op, bOutbox, s.db.Update(func(tx *bolt.Tx) error {
		it, err := getItem(tx, id)
		if err != nil {
			return err
		}
		if !slices.Contains(from, it.State) {
			return &TransitionError{ID: id, From: it.State, To: to}
		}
		if err := fn(tx, &it); err != nil {
			return err
		}
		it.State, it.Updated = to, s.now()
		if err := s.putItem(tx, &it); err != nil {
			return err
		}
		if !to.finished() {
			return nil
		}
		if err := s.journal(tx, &it); err != nil {
			return err
		}
		if err := tx.Bucket(bOutDone).Put(timeKey(it.Updated, []byte(it.ID)), nil); err != nil {
			return err
		}
		if _, err := addCount(tx, cOutDone, 1); err != nil {
			return err
		}
		_, err = s.evictDone(tx, time.Time{}, s.opts.MaxOutbox)
		return err
	}))
}

// evictDone deletes finished items older than before, and the oldest ones
// while more than limit remain (limit < 0: no count limit).
func (s *Store) evictDone(tx *bolt.Tx, before time.Time, limit int) (int, error) {
	n, err := count(tx, cOutDone)
	if err != nil {
		return 0, err
	}
	removed := 0
	c := tx.Bucket(bOutDone).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.First() {
		t, err := keyTime(k)
		if err != nil {
			return removed, err
		}
		if !t.Before(before) && (limit < 0 || n <= uint64(limit)) {
			break
		}
		id := string(k[8:])
		if it, err := getItem(tx, id); err == nil {
			if err := s.deleteRefs(tx, &it); err != nil {
				return removed, err
			}
		}
		if err := tx.Bucket(bOutbox).Delete([]byte(id)); err != nil {
			return removed, err
		}
		if err := c.Delete(); err != nil {
			return removed, err
		}
		if n, err = addCount(tx, cOutDone, -1); err != nil {
			return removed, err
		}
		removed++
	}
	return removed, nil
}

func (s *Store) deleteRefs(tx *bolt.Tx, it *OutboxItem) error {
	for _, r := range it.Refs {
		if err := tx.Bucket(bOutRefs).Delete(refKey(r, it.SentAt, it.ID)); err != nil {
			return err
		}
	}
	return nil
}

// recoverSending puts items interrupted mid-send back in the queue, due at
// once in their original FIFO place, and returns how many.
func (s *Store) recoverSending() (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		var stuck []OutboxItem
		err := tx.Bucket(bOutbox).ForEach(func(k, v []byte) error {
			var it OutboxItem
			if err := json.Unmarshal(v, &it); err != nil {
				return fmt.Errorf("corrupt item %s: %w", k, err)
			}
			if it.State == Sending {
				stuck = append(stuck, it)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, it := range stuck {
			it.State, it.Updated, it.NotBefore = Queued, s.now(), time.Time{}
			it.LastErr = "agent restarted while sending; the message may have been sent already"
			if err := s.putItem(tx, &it); err != nil {
				return err
			}
			if err := tx.Bucket(bOutQueue).Put(queueKey(&it), []byte(it.ID)); err != nil {
				return err
			}
		}
		n = len(stuck)
		return nil
	})
	return n, wrap("outbox recover", bOutbox, err)
}

func getItem(tx *bolt.Tx, id string) (OutboxItem, error) {
	var it OutboxItem
	v := tx.Bucket(bOutbox).Get([]byte(id))
	if v == nil {
		return it, fmt.Errorf("%w: no outbox item %q", ErrNotFound, id)
	}
	if err := json.Unmarshal(v, &it); err != nil {
		return it, fmt.Errorf("corrupt item %s: %w", id, err)
	}
	return it, nil
}

// journal records an outcome in the results queue; see Results.
func (s *Store) journal(tx *bolt.Tx, it *OutboxItem) error {
	v, err := json.Marshal(it)
	if err != nil {
		return err
	}
	if s.opts.OnResult != nil {
		tx.OnCommit(s.opts.OnResult)
	}
	return s.results.pushTx(tx, v)
}

func (s *Store) putItem(tx *bolt.Tx, it *OutboxItem) error {
	v, err := json.Marshal(it)
	if err != nil {
		return err
	}
	return tx.Bucket(bOutbox).Put([]byte(it.ID), v)
}

func queueKey(it *OutboxItem) []byte { return timeKey(it.NotBefore, u64(it.Seq)) }

func refKey(ref int, sentAt time.Time, id string) []byte {
	return append([]byte{byte(ref)}, timeKey(sentAt, []byte(id))...)
}

// OutboxLen is the number of MO messages queued or being sent.
func (s *Store) OutboxLen() (int, error) {
	var n uint64
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		n, err = count(tx, cOutbox)
		return err
	})
	return int(n), err
}
