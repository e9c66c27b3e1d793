package receiver

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Store keeps every forward on disk, committed with fsync before the
// platform gets its 2xx: the platform re-transmits until it does, so an
// answer is only given for what cannot be lost any more.
//
//	seen     "mo/<id>", "dlr/<id>/<status>" → ""   de-duplication
//	parts    "<iccid>|<identifier>|<total>|<partno>" → MO   waiting parts
//	records  seq → Record                          what was received, in order
//	meta     "shown" → seq                         the last record shown
type Store struct {
	db *bolt.DB
}

var (
	bSeen    = []byte("seen")
	bParts   = []byte("parts")
	bRecords = []byte("records")
	bMeta    = []byte("meta")
	kShown   = []byte("shown")
)

// Open opens or creates the store at path (mode 0600).
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("receiver: open store %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("receiver: store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bSeen, bParts, bRecords, bMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("receiver: store %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

// Outcome is what storing a forward did.
type Outcome int

// Outcomes.
const (
	Duplicate Outcome = iota // seen before: nothing changed
	Held                     // a part, waiting for the others
	Stored                   // a new record
)

// PutMO stores an MO part; the record appears when its message is whole.
func (s *Store) PutMO(m MO, received time.Time) (Outcome, error) {
	out := Duplicate
	err := s.db.Update(func(tx *bolt.Tx) error {
		seen := tx.Bucket(bSeen)
		key := []byte("mo/" + strconv.FormatInt(m.ID, 10))
		if seen.Get(key) != nil {
			return nil
		}
		if err := seen.Put(key, nil); err != nil {
			return err
		}
		mp := m.MultiPartInfo
		if mp == nil || mp.Total == 1 {
			out = Stored
			return putRecord(tx, recordOfMO([]MO{m}, received))
		}
		parts := tx.Bucket(bParts)
		group := fmt.Sprintf("%s|%d|%d|", m.Endpoint.Name, mp.Identifier, mp.Total)
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if err := parts.Put([]byte(group+fmt.Sprintf("%03d", mp.PartNo)), b); err != nil {
			return err
		}
		var have []MO
		c := parts.Cursor()
		for k, v := c.Seek([]byte(group)); k != nil && hasPrefix(k, group); k, v = c.Next() {
			var p MO
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("part %s: %w", k, err)
			}
			have = append(have, p)
		}
		if len(have) < mp.Total {
			out = Held
			return nil
		}
		for _, p := range have {
			if err := parts.Delete([]byte(group + fmt.Sprintf("%03d", p.MultiPartInfo.PartNo))); err != nil {
				return err
			}
		}
		out = Stored
		return putRecord(tx, recordOfMO(have, received))
	})
	if err != nil {
		return Duplicate, fmt.Errorf("receiver: store MO %d: %w", m.ID, err)
	}
	return out, nil
}

// PutDLR stores a delivery report, once per SMS and status.
func (s *Store) PutDLR(d DLR, received time.Time) (Outcome, error) {
	out := Duplicate
	err := s.db.Update(func(tx *bolt.Tx) error {
		seen := tx.Bucket(bSeen)
		key := []byte("dlr/" + strconv.FormatInt(d.ID, 10) + "/" + d.Status.Status)
		if seen.Get(key) != nil {
			return nil
		}
		if err := seen.Put(key, nil); err != nil {
			return err
		}
		out = Stored
		return putRecord(tx, Record{V: RecordVersion, Kind: KindDeliveryReport, ID: strconv.FormatInt(d.ID, 10),
			ICCID: d.Endpoint.Name, Received: received.UTC(), SubmitDate: d.SubmitDate,
			FinalDate: d.FinalDate, Status: d.Status.Status})
	})
	if err != nil {
		return Duplicate, fmt.Errorf("receiver: store delivery report %d: %w", d.ID, err)
	}
	return out, nil
}

func hasPrefix(k []byte, p string) bool {
	return len(k) >= len(p) && string(k[:len(p)]) == p
}

func putRecord(tx *bolt.Tx, r Record) error {
	b := tx.Bucket(bRecords)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	r.Seq = seq
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return b.Put(u64(seq), v)
}

func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// recordOfMO joins the parts of one message, in part order.
func recordOfMO(parts []MO, received time.Time) Record {
	slices.SortFunc(parts, func(a, b MO) int {
		if a.MultiPartInfo == nil || b.MultiPartInfo == nil {
			return 0
		}
		return a.MultiPartInfo.PartNo - b.MultiPartInfo.PartNo
	})
	first := parts[0]
	r := Record{V: RecordVersion, Kind: KindSMS, ID: strconv.FormatInt(first.ID, 10), ICCID: first.Endpoint.Name,
		Received: received.UTC(), SubmitDate: first.SubmitDate, From: first.SourceAddress, To: first.DestAddress,
		DCS: first.DCS, Parts: len(parts)}
	var text string
	var data []byte
	for _, p := range parts {
		if p.DCS == DCS8Bit {
			b, _ := hex.DecodeString(p.Payload) // checked by DecodeMO
			data = append(data, b...)
		} else {
			text += p.Payload
		}
	}
	r.Text = text
	if len(data) > 0 {
		r.DataHex = hex.EncodeToString(data)
	}
	return r
}

// Unshown returns up to n records after the last one shown, in order.
func (s *Store) Unshown(n int) ([]Record, error) {
	var out []Record
	err := s.db.View(func(tx *bolt.Tx) error {
		var from uint64
		if v := tx.Bucket(bMeta).Get(kShown); len(v) == 8 {
			from = binary.BigEndian.Uint64(v)
		}
		c := tx.Bucket(bRecords).Cursor()
		for k, v := c.Seek(u64(from + 1)); k != nil && len(out) < n; k, v = c.Next() {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("record %x: %w", k, err)
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("receiver: read records: %w", err)
	}
	return out, nil
}

// MarkShown records that everything up to seq has been shown.
func (s *Store) MarkShown(seq uint64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bMeta).Put(kShown, u64(seq))
	})
}

// Count is the number of records kept.
func (s *Store) Count() (int, error) {
	var n int
	err := s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bRecords).Stats().KeyN
		return nil
	})
	return n, err
}
