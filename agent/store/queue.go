package store

import (
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"
)

// DropPolicy says what a full Queue does with a new item.
type DropPolicy int

const (
	// RejectWhenFull refuses the new item with ErrFull: for events and SMS
	// results that must not be lost; the producer keeps or retries them.
	RejectWhenFull DropPolicy = iota
	// DropOldest discards the oldest item and counts it: for telemetry,
	// where the newest readings are worth more than old ones.
	DropOldest
)

// Queue is a bounded durable FIFO, used for store-and-forward while the
// broker is unreachable.
type Queue struct {
	s      *Store
	name   string
	bucket []byte
	max    int
	policy DropPolicy
}

// QueueItem is one queued payload; Seq increases with every Push.
type QueueItem struct {
	Seq uint64
	Rec []byte
}

// Telemetry is the queue that drops the oldest item when full.
func (s *Store) Telemetry() *Queue { return s.telemetry }

// Events is the queue that refuses new items with ErrFull when full.
func (s *Store) Events() *Queue { return s.events }

// Results is the journal of MO outcomes: every outbox transition to sent,
// delivered or failed appends the item's JSON in the same transaction, so
// a reporter that drains it (and acknowledges after handing each on)
// reports every outcome at least once, crashes included. It drops the
// oldest when it holds four times Options.MaxOutbox records, which only a
// reporter that never runs can reach.
func (s *Store) Results() *Queue { return s.results }

// Feed is a log for local readers (the agent's local API): records are
// not acknowledged but read by position, so any number of readers each
// keep their own cursor, the last Seq they saw, across reconnects and
// restarts. It drops the oldest when full; a reader whose cursor fell
// behind sees the jump in Seq.
func (s *Store) Feed() *Queue { return s.feed }

func (q *Queue) countName() string   { return "n/" + string(q.bucket) }
func (q *Queue) droppedName() string { return "dropped/" + string(q.bucket) }

// Push appends rec, on disk when it returns.
func (q *Queue) Push(rec []byte) error {
	op := q.name + " push"
	if err := q.s.checkPayload(rec); err != nil {
		return wrap(op, q.bucket, err)
	}
	return wrap(op, q.bucket, q.s.db.Update(func(tx *bolt.Tx) error { return q.pushTx(tx, rec) }))
}

// pushTx appends rec inside tx, so a state change and the record that
// reports it commit together.
func (q *Queue) pushTx(tx *bolt.Tx, rec []byte) error {
	b := tx.Bucket(q.bucket)
	n, err := count(tx, q.countName())
	if err != nil {
		return err
	}
	if n >= uint64(q.max) {
		if q.policy == RejectWhenFull {
			return fmt.Errorf("%w: %s queue holds %d of %d items", ErrFull, q.name, n, q.max)
		}
		c := b.Cursor()
		for k, _ := c.First(); k != nil && n >= uint64(q.max); k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
			if n, err = addCount(tx, q.countName(), -1); err != nil {
				return err
			}
			if _, err := addCount(tx, q.droppedName(), 1); err != nil {
				return err
			}
		}
	}
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	if err := b.Put(u64(seq), rec); err != nil {
		return err
	}
	_, err = addCount(tx, q.countName(), 1)
	return err
}

// Peek returns up to n of the oldest items without removing them.
func (q *Queue) Peek(n int) ([]QueueItem, error) {
	op := q.name + " peek"
	if n <= 0 {
		return nil, wrap(op, q.bucket, fmt.Errorf("%w: n %d, want > 0", ErrInvalid, n))
	}
	var out []QueueItem
	err := q.s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(q.bucket).Cursor()
		for k, v := c.First(); k != nil && len(out) < n; k, v = c.Next() {
			seq, err := btou(k)
			if err != nil {
				return err
			}
			out = append(out, QueueItem{Seq: seq, Rec: append([]byte(nil), v...)})
		}
		return nil
	})
	return out, wrap(op, q.bucket, err)
}

// After returns up to n items with Seq greater than after, oldest first,
// without removing them.
func (q *Queue) After(after uint64, n int) ([]QueueItem, error) {
	op := q.name + " read"
	if n <= 0 {
		return nil, wrap(op, q.bucket, fmt.Errorf("%w: n %d, want > 0", ErrInvalid, n))
	}
	if after == math.MaxUint64 {
		return nil, nil
	}
	var out []QueueItem
	err := q.s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(q.bucket).Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && len(out) < n; k, v = c.Next() {
			seq, err := btou(k)
			if err != nil {
				return err
			}
			out = append(out, QueueItem{Seq: seq, Rec: append([]byte(nil), v...)})
		}
		return nil
	})
	return out, wrap(op, q.bucket, err)
}

// Last is the Seq of the newest item ever pushed, 0 if none was.
func (q *Queue) Last() (uint64, error) {
	var n uint64
	err := q.s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(q.bucket).Sequence()
		return nil
	})
	return n, wrap(q.name+" last", q.bucket, err)
}

// Ack removes every item with Seq up to and including through, and returns
// how many it removed. It takes the last Seq sent rather than a count,
// because DropOldest may have discarded peeked items in the meantime and a
// count would then remove items that were never sent.
func (q *Queue) Ack(through uint64) (int, error) {
	removed := 0
	err := q.s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(q.bucket).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.First() {
			seq, err := btou(k)
			if err != nil {
				return err
			}
			if seq > through {
				break
			}
			if err := c.Delete(); err != nil {
				return err
			}
			removed++
		}
		_, err := addCount(tx, q.countName(), -int64(removed))
		return err
	})
	if err != nil {
		return 0, wrap(q.name+" ack", q.bucket, err)
	}
	return removed, nil
}

// Len is the number of items queued.
func (q *Queue) Len() (int, error) {
	var n uint64
	err := q.s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = count(tx, q.countName())
		return err
	})
	return int(n), wrap(q.name+" len", q.bucket, err)
}

// Dropped is the number of items DropOldest has discarded since the store
// was created; it survives restarts so operators see losses across reboots.
func (q *Queue) Dropped() (uint64, error) {
	var n uint64
	err := q.s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = count(tx, q.droppedName())
		return err
	})
	return n, wrap(q.name+" dropped", q.bucket, err)
}
