package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The inbox side (MT) follows the order agent/messaging's inbox drives: read from the modem →
// Commit (fsync'd) → delete from the modem → publish from Pending →
// MarkPublished. A crash anywhere in that chain repeats a step, never skips
// one: a message still on the SIM is re-read and recognised by its stable id
// (Commit returns added=false, the caller deletes it again); a message not yet
// marked published is handed out again by Pending.
//
// Parts of concatenated messages live in their own bucket until the
// reassembler has a whole message (or gives up waiting) and calls
// CommitGroup, which in one transaction commits the joined message and
// forgets the parts. Each part carries the stable id of its own SMS, and that
// id stays in the dedupe index after the group is committed, so a part
// re-read after a crash between PutPart and its deletion from the SIM is not
// mistaken for the start of a new message.

// Kinds of entries in the ids bucket (first byte of the value).
const (
	idPending byte = 'p' // + 8-byte inbox seq
	idDone    byte = 'd' // + 8-byte time published (or absorbed into a message); also in expiry
	idPart    byte = 'g' // + part group key
)

// InboxItem is an MT message waiting to be published.
type InboxItem struct {
	Seq       uint64 // commit order
	ID        string
	Committed time.Time
	Rec       []byte
}

type inboxRecord struct {
	ID        string    `json:"id"`
	Committed time.Time `json:"committed"`
	Rec       []byte    `json:"rec"`
}

// Part is one SMS of a concatenated message.
type Part struct {
	ID       string // stable id of this SMS (dedupe key)
	Seq      int    // part number, 1..255
	Rec      []byte
	Received time.Time
}

// PartGroup summarises a group of parts awaiting reassembly.
type PartGroup struct {
	Key   string
	Count int       // parts held (duplicates of a part number count separately)
	First time.Time // earliest Received, for the reassembly timeout
}

// Commit stores an MT message under its stable id and returns once it is on
// disk. A second Commit of a known id (pending, published within the dedupe
// window, or held as a part) returns added=false and changes nothing. When
// the inbox is full it returns ErrFull, unless the id is already known.
func (s *Store) Commit(id string, rec []byte) (added bool, err error) {
	const op = "inbox commit"
	if err := checkKey("id", id); err != nil {
		return false, wrap(op, bInbox, err)
	}
	if err := s.checkPayload(rec); err != nil {
		return false, wrap(op, bInbox, fmt.Errorf("message %q: %w", id, err))
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		var err error
		added, err = s.commitTx(tx, id, rec)
		return err
	})
	return added, wrap(op, bInbox, err)
}

func (s *Store) commitTx(tx *bolt.Tx, id string, rec []byte) (bool, error) {
	ids := tx.Bucket(bIDs)
	if ids.Get([]byte(id)) != nil {
		return false, nil
	}
	if err := s.inboxRoom(tx, 1); err != nil {
		return false, fmt.Errorf("message %q: %w", id, err)
	}
	inbox := tx.Bucket(bInbox)
	seq, err := inbox.NextSequence()
	if err != nil {
		return false, err
	}
	v, err := json.Marshal(inboxRecord{ID: id, Committed: s.now(), Rec: rec})
	if err != nil {
		return false, err
	}
	if err := inbox.Put(u64(seq), v); err != nil {
		return false, err
	}
	if err := ids.Put([]byte(id), append([]byte{idPending}, u64(seq)...)); err != nil {
		return false, err
	}
	_, err = addCount(tx, cInbox, 1)
	return true, err
}

func (s *Store) inboxRoom(tx *bolt.Tx, n int) error {
	held, err := count(tx, cInbox)
	if err != nil {
		return err
	}
	if held+uint64(n) > uint64(s.opts.MaxInbox) {
		return fmt.Errorf("%w: inbox holds %d of %d messages and parts; leave it on the SIM until the publisher catches up",
			ErrFull, held, s.opts.MaxInbox)
	}
	return nil
}

// Pending returns up to limit unpublished messages in commit order. Items are
// handed out again (after a restart too) until MarkPublished.
func (s *Store) Pending(limit int) ([]InboxItem, error) {
	const op = "inbox pending"
	if limit <= 0 {
		return nil, wrap(op, bInbox, fmt.Errorf("%w: limit %d, want > 0", ErrInvalid, limit))
	}
	var out []InboxItem
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bInbox).Cursor()
		for k, v := c.First(); k != nil && len(out) < limit; k, v = c.Next() {
			seq, err := btou(k)
			if err != nil {
				return err
			}
			var r inboxRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("corrupt record at seq %d: %w", seq, err)
			}
			out = append(out, InboxItem{Seq: seq, ID: r.ID, Committed: r.Committed, Rec: r.Rec})
		}
		return nil
	})
	return out, wrap(op, bInbox, err)
}

// MarkPublished records that the publisher has confirmed id. The message
// leaves Pending; its id is remembered for DedupeWindow. Marking an already
// published id again is not an error (the publisher is at-least-once too).
func (s *Store) MarkPublished(id string) error {
	const op = "inbox mark published"
	err := s.db.Update(func(tx *bolt.Tx) error {
		v := tx.Bucket(bIDs).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("%w: no inbox message %q", ErrNotFound, id)
		}
		switch v[0] {
		case idDone:
			return nil
		case idPart:
			return fmt.Errorf("%w: %q is a part of group %q, not a message", ErrInvalid, id, v[1:])
		case idPending:
			seq, err := btou(v[1:])
			if err != nil {
				return fmt.Errorf("ids entry %q: %w", id, err)
			}
			if err := tx.Bucket(bInbox).Delete(u64(seq)); err != nil {
				return err
			}
			if _, err := addCount(tx, cInbox, -1); err != nil {
				return err
			}
			return s.setDone(tx, id, s.now())
		default:
			return fmt.Errorf("ids entry %q: unknown kind %q", id, v[0])
		}
	})
	return wrap(op, bInbox, err)
}

// setDone turns id into a dedupe-only entry and enforces MaxDedupe.
func (s *Store) setDone(tx *bolt.Tx, id string, at time.Time) error {
	k := timeKey(at, nil)
	if err := tx.Bucket(bIDs).Put([]byte(id), append([]byte{idDone}, k...)); err != nil {
		return err
	}
	if err := tx.Bucket(bExpiry).Put(append(k, id...), nil); err != nil {
		return err
	}
	if _, err := addCount(tx, cDedupe, 1); err != nil {
		return err
	}
	_, err := s.evictDedupe(tx, time.Time{}, s.opts.MaxDedupe)
	return err
}

// evictDedupe forgets done ids older than before, and the oldest ones while
// more than limit remain (limit < 0: no count limit).
func (s *Store) evictDedupe(tx *bolt.Tx, before time.Time, limit int) (int, error) {
	ids, exp := tx.Bucket(bIDs), tx.Bucket(bExpiry)
	n, err := count(tx, cDedupe)
	if err != nil {
		return 0, err
	}
	removed := 0
	c := exp.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.First() {
		t, err := keyTime(k)
		if err != nil {
			return removed, err
		}
		if !t.Before(before) && (limit < 0 || n <= uint64(limit)) {
			break
		}
		id := append([]byte(nil), k[8:]...)
		if v := ids.Get(id); v != nil && v[0] == idDone {
			if err := ids.Delete(id); err != nil {
				return removed, err
			}
		}
		if err := c.Delete(); err != nil {
			return removed, err
		}
		if n, err = addCount(tx, cDedupe, -1); err != nil {
			return removed, err
		}
		removed++
	}
	return removed, nil
}

type partRecord struct {
	ID       string    `json:"id"`
	Seq      int       `json:"seq"`
	Received time.Time `json:"received"`
	Rec      []byte    `json:"rec"`
}

// PutPart holds one part of a concatenated message under the group key
// (the reassembler's choice, e.g. originator+reference+total) and returns
// once it is on disk. A part whose id is already known returns added=false.
// Two different SMS with the same key and part number are both kept: the
// store never drops an SMS; the reassembler decides. Parts count against
// MaxInbox.
func (s *Store) PutPart(key string, p Part) (added bool, err error) {
	const op = "put part"
	if err := checkKey("group key", key); err != nil {
		return false, wrap(op, bParts, err)
	}
	if err := checkKey("part id", p.ID); err != nil {
		return false, wrap(op, bParts, err)
	}
	if p.Seq < 1 || p.Seq > 255 {
		return false, wrap(op, bParts, fmt.Errorf("%w: part %q number %d, want 1..255", ErrInvalid, p.ID, p.Seq))
	}
	if err := s.checkPayload(p.Rec); err != nil {
		return false, wrap(op, bParts, fmt.Errorf("part %q: %w", p.ID, err))
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		ids := tx.Bucket(bIDs)
		if ids.Get([]byte(p.ID)) != nil {
			return nil
		}
		if err := s.inboxRoom(tx, 1); err != nil {
			return fmt.Errorf("part %q: %w", p.ID, err)
		}
		g, err := tx.Bucket(bParts).CreateBucketIfNotExists([]byte(key))
		if err != nil {
			return fmt.Errorf("group %q: %w", key, err)
		}
		v, err := json.Marshal(partRecord{ID: p.ID, Seq: p.Seq, Received: p.Received, Rec: p.Rec})
		if err != nil {
			return err
		}
		if err := g.Put(append([]byte{byte(p.Seq)}, p.ID...), v); err != nil {
			return err
		}
		if err := ids.Put([]byte(p.ID), append([]byte{idPart}, key...)); err != nil {
			return err
		}
		if _, err := addCount(tx, cInbox, 1); err != nil {
			return err
		}
		added = true
		return nil
	})
	return added, wrap(op, bParts, err)
}

// Parts returns the parts held for key, by part number then id.
func (s *Store) Parts(key string) ([]Part, error) {
	var out []Part
	err := s.db.View(func(tx *bolt.Tx) error {
		g := tx.Bucket(bParts).Bucket([]byte(key))
		if g == nil {
			return fmt.Errorf("%w: no part group %q", ErrNotFound, key)
		}
		var err error
		out, err = readParts(g, key)
		return err
	})
	return out, wrap("parts", bParts, err)
}

func readParts(g *bolt.Bucket, key string) ([]Part, error) {
	var out []Part
	err := g.ForEach(func(k, v []byte) error {
		var r partRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("group %q: corrupt part %x: %w", key, k, err)
		}
		out = append(out, Part{ID: r.ID, Seq: r.Seq, Rec: r.Rec, Received: r.Received})
		return nil
	})
	return out, err
}

// PartGroups lists the groups awaiting reassembly, oldest first.
func (s *Store) PartGroups() ([]PartGroup, error) {
	var out []PartGroup
	err := s.db.View(func(tx *bolt.Tx) error {
		parts := tx.Bucket(bParts)
		return parts.ForEachBucket(func(k []byte) error {
			ps, err := readParts(parts.Bucket(k), string(k))
			if err != nil {
				return err
			}
			pg := PartGroup{Key: string(k), Count: len(ps)}
			for i, p := range ps {
				if i == 0 || p.Received.Before(pg.First) {
					pg.First = p.Received
				}
			}
			out = append(out, pg)
			return nil
		})
	})
	slices.SortStableFunc(out, func(a, b PartGroup) int { return a.First.Compare(b.First) })
	return out, wrap("part groups", bParts, err)
}

// CommitGroup commits the message joined from the parts of key under id
// (complete, or incomplete after the reassembly timeout) and forgets the
// parts, in one transaction: a crash leaves either the parts or the message,
// never both, never neither. The part ids stay in the dedupe index. Calling
// it again after success (group gone, id known) returns added=false.
func (s *Store) CommitGroup(key, id string, rec []byte) (added bool, err error) {
	const op = "commit group"
	if err := checkKey("group key", key); err != nil {
		return false, wrap(op, bParts, err)
	}
	if err := checkKey("id", id); err != nil {
		return false, wrap(op, bParts, err)
	}
	if err := s.checkPayload(rec); err != nil {
		return false, wrap(op, bParts, fmt.Errorf("message %q: %w", id, err))
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		parts := tx.Bucket(bParts)
		g := parts.Bucket([]byte(key))
		if g == nil {
			if tx.Bucket(bIDs).Get([]byte(id)) != nil {
				return nil
			}
			return fmt.Errorf("%w: no part group %q", ErrNotFound, key)
		}
		if tx.Bucket(bIDs).Get([]byte(id)) != nil {
			return fmt.Errorf("%w: id %q is already in use; the joined message needs an id of its own", ErrInvalid, id)
		}
		ps, err := readParts(g, key)
		if err != nil {
			return err
		}
		now := s.now()
		for _, p := range ps {
			if v := tx.Bucket(bIDs).Get([]byte(p.ID)); v == nil || v[0] != idPart || !bytes.Equal(v[1:], []byte(key)) {
				return fmt.Errorf("ids entry for part %q does not point at group %q: store inconsistent", p.ID, key)
			}
			if err := s.setDone(tx, p.ID, now); err != nil {
				return err
			}
		}
		if err := parts.DeleteBucket([]byte(key)); err != nil {
			return fmt.Errorf("group %q: %w", key, err)
		}
		if _, err := addCount(tx, cInbox, -int64(len(ps))); err != nil {
			return err
		}
		added, err = s.commitTx(tx, id, rec)
		return err
	})
	return added, wrap(op, bParts, err)
}
