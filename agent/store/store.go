// Package store keeps the agent's durable queues in one bbolt file, so that
// the house rule "nothing is lost" holds across kill -9 and power cuts.
//
// The store knows nothing about SMS encoding: callers hand it opaque payloads
// (the agent JSON-encodes its records) plus the few indexing fields the store
// needs (stable ids, part numbers, message references).
//
// # Durability
//
// Every mutating call runs in its own bbolt read-write transaction and returns
// only after bbolt has fsync'd the data and the meta page (NoSync is false).
// That is what lets the caller act on the return: delete the SMS from the SIM
// after [Store.Commit], acknowledge a send request after [Store.Enqueue].
// NoGrowSync stays false because on ext4 a grown file whose size was not
// synced can come back short after a power cut. NoFreelistSync stays false:
// it would save one page write per commit, but makes every open after a crash
// rebuild the freelist by scanning the file; at SMS rates the page is cheap and
// the default is bbolt's most exercised path. Open also fsyncs the directory,
// so a freshly created file survives a power cut, not only a crash.
//
// # Layout
//
//	meta         schema version, item counters, drop counters
//	ids          stable MT id → pending seq | part group | done time (dedupe index)
//	expiry       done time ‖ id → ∅ (prunes the dedupe index in time order)
//	inbox        seq → pending MT message (commit order via NextSequence)
//	parts        group key → nested bucket: part seq ‖ id → part
//	outbox       id → OutboxItem
//	out_queue    not-before ‖ seq → id (queued items, due order)
//	out_refs     ref ‖ sent time ‖ id → ∅ (status-report matching)
//	out_done     finished time ‖ id → ∅ (retention pruning)
//	q_telemetry  seq → payload (drops oldest when full)
//	q_events     seq → payload (refuses when full)
//	q_results    seq → OutboxItem at a sent/delivered/failed transition
//	q_feed       seq → record for local readers, kept after reading (drops oldest)
//	concat_ref   destination → last concatenation reference
//	state        name → blob (e.g. the rate limiter's snapshot)
//
// # Bounds
//
// Pending MT messages plus held multipart parts are bounded by MaxInbox;
// queued and sending MO messages by MaxOutbox; both refuse with [ErrFull].
// Entries kept only for deduplication (published MT ids) and finished MO
// items are bounded by time (DedupeWindow, Retention, enforced by
// [Store.Prune]) and by count (MaxDedupe, MaxOutbox: the oldest goes first),
// so a flood cannot grow the file without limit.
//
// All methods are safe for concurrent use: bbolt serialises writers and
// gives readers consistent snapshots.
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"cellagent/modem/clock"
)

// Errors callers are expected to test with errors.Is.
var (
	// ErrFull: a bounded queue is at its limit. For MT messages the caller
	// leaves the SMS on the SIM, which is where it should wait.
	ErrFull = errors.New("queue full")
	// ErrNotFound: no item with that id or key.
	ErrNotFound = errors.New("not found")
	// ErrLocked: another process holds the store file.
	ErrLocked = errors.New("store in use by another process")
	// ErrTooLarge: a payload exceeds Options.MaxPayload.
	ErrTooLarge = errors.New("payload too large")
	// ErrInvalid: a malformed argument (empty id, part number out of range…).
	ErrInvalid = errors.New("invalid argument")
	// ErrNoMatch: a status report matches no recently sent message.
	ErrNoMatch = errors.New("no matching message")
)

const schemaVersion = 1

var (
	bMeta      = []byte("meta")
	bIDs       = []byte("ids")
	bExpiry    = []byte("expiry")
	bInbox     = []byte("inbox")
	bParts     = []byte("parts")
	bOutbox    = []byte("outbox")
	bOutQueue  = []byte("out_queue")
	bOutRefs   = []byte("out_refs")
	bOutDone   = []byte("out_done")
	bTelemetry = []byte("q_telemetry")
	bEvents    = []byte("q_events")
	bResults   = []byte("q_results")
	bConcatRef = []byte("concat_ref")
	bState     = []byte("state")
	bFeed      = []byte("q_feed")

	allBuckets = [][]byte{bMeta, bIDs, bExpiry, bInbox, bParts, bOutbox, bOutQueue,
		bOutRefs, bOutDone, bTelemetry, bEvents, bResults, bConcatRef, bState, bFeed}

	kSchema = []byte("schema")
)

// Counter names in the meta bucket.
const (
	cInbox   = "n/inbox"   // pending MT messages + held parts
	cDedupe  = "n/dedupe"  // done ids kept for deduplication
	cOutbox  = "n/outbox"  // queued + sending
	cOutDone = "n/outdone" // sent, delivered, failed
)

// maxKeyLen bounds ids, part group keys, destinations and state names; they
// are index keys, not payloads.
const maxKeyLen = 255

// Options bound the store and inject its clock. Zero values take the
// defaults noted on each field; negative values are an error.
type Options struct {
	MaxInbox     int           // pending MT messages + held parts; default 10000
	MaxDedupe    int           // published MT ids kept for dedupe; default 20000
	MaxOutbox    int           // queued+sending MO items, and again finished ones; default 1000
	MaxTelemetry int           // telemetry queue, drops oldest; default 10000
	MaxEvents    int           // event queue, refuses when full; default 1000
	MaxFeed      int           // feed for local readers, drops oldest; default 5000
	MaxPayload   int           // bytes per payload; default 64 KiB
	DedupeWindow time.Duration // how long published MT ids are remembered; default 7 days
	Retention    time.Duration // how long finished MO items are kept; default 7 days
	ReportWindow time.Duration // how old a sent message may be to match a status report; default 72 h
	LockTimeout  time.Duration // how long Open waits for the file lock; default 1 s
	Clock        clock.Clock   // stamps commits and state changes; default clock.System
	Logger       *slog.Logger  // warnings such as requeued sends; default discards
	// OnResult, when set, is called after a transaction that added to
	// Results commits, so a reporter need not poll. It must not block.
	OnResult func()
	// OutboxGroup names the FIFO an outbox payload belongs to (the agent
	// groups by destination): within a group, [Store.Next] hands items out
	// in the order they were accepted, so one waiting for a retry holds
	// back those behind it. Nil puts every item in a group of its own.
	OutboxGroup func(rec []byte) string
}

func (o Options) withDefaults() (Options, error) {
	ints := []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxInbox", &o.MaxInbox, 10000},
		{"MaxDedupe", &o.MaxDedupe, 20000},
		{"MaxOutbox", &o.MaxOutbox, 1000},
		{"MaxTelemetry", &o.MaxTelemetry, 10000},
		{"MaxEvents", &o.MaxEvents, 1000},
		{"MaxFeed", &o.MaxFeed, 5000},
		{"MaxPayload", &o.MaxPayload, 64 << 10},
	}
	for _, f := range ints {
		if *f.v < 0 {
			return o, fmt.Errorf("%w: Options.%s is negative (%d)", ErrInvalid, f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	durs := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"DedupeWindow", &o.DedupeWindow, 7 * 24 * time.Hour},
		{"Retention", &o.Retention, 7 * 24 * time.Hour},
		{"ReportWindow", &o.ReportWindow, 72 * time.Hour},
		{"LockTimeout", &o.LockTimeout, time.Second},
	}
	for _, f := range durs {
		if *f.v < 0 {
			return o, fmt.Errorf("%w: Options.%s is negative (%s)", ErrInvalid, f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if o.Clock == nil {
		o.Clock = clock.System
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o, nil
}

// Store is an open store file. Create it with [Open].
type Store struct {
	db        *mappedDB
	path      string
	dev, ino  uint64 // the file opened, to notice it deleted or replaced
	opts      Options
	telemetry *Queue
	events    *Queue
	results   *Queue
	feed      *Queue
	groups    groupCache
}

// Open opens or creates the store at path. The directory is created 0700 (an
// existing one is tightened to 0700, or refused if it is not ours) and
// the file 0600 if missing (an existing file readable by others is tightened
// to 0600: it holds people's messages). A second Open of the same file, from
// this or another process, fails with [ErrLocked] after Options.LockTimeout.
// Outbox items left in state sending by a crash are put back in the queue.
func Open(path string, opts Options) (*Store, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: open %s: create directory: %w", path, err)
	}
	if err := privateDir(dir, o.Logger); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.LockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("store: open %s: %w (waited %s for the file lock)", path, ErrLocked, o.LockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &Store{db: &mappedDB{DB: db}, path: path, opts: o}
	s.telemetry = &Queue{s: s, name: "telemetry", bucket: bTelemetry, max: o.MaxTelemetry, policy: DropOldest}
	s.events = &Queue{s: s, name: "events", bucket: bEvents, max: o.MaxEvents, policy: RejectWhenFull}
	s.results = &Queue{s: s, name: "results", bucket: bResults, max: 4 * o.MaxOutbox, policy: DropOldest}
	s.feed = &Queue{s: s, name: "feed", bucket: bFeed, max: o.MaxFeed, policy: DropOldest}
	if err := s.init(dir); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// The file is locked: a path that names another file later was
	// deleted or replaced behind our back, not opened by another agent.
	if s.dev, s.ino, err = fileID(path); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return s, nil
}

// ErrGone: the store's file was deleted or replaced while open (rm -rf
// of the state directory). Writes still succeed, into a file nobody will
// open again: the agent must restart to keep its promises.
var ErrGone = errors.New("store file deleted or replaced while open")

// CheckFile says whether the store's path still names the file it has
// open, with ErrGone when it does not.
func (s *Store) CheckFile() error {
	dev, ino, err := fileID(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store: %s: %w (it no longer exists)", s.path, ErrGone)
	}
	if err != nil {
		return fmt.Errorf("store: %s: %w", s.path, err)
	}
	if dev != s.dev || ino != s.ino {
		return fmt.Errorf("store: %s: %w (the path names another file now)", s.path, ErrGone)
	}
	return nil
}

func fileID(path string) (dev, ino uint64, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, fmt.Errorf("%s: no device and inode numbers", path)
	}
	return uint64(st.Dev), st.Ino, nil
}

func (s *Store) init(dir string) error {
	if fi, err := os.Stat(s.path); err != nil {
		return err
	} else if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(s.path, 0o600); err != nil {
			return fmt.Errorf("restrict permissions: %w", err)
		}
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bMeta)
		if v := meta.Get(kSchema); v != nil {
			got, err := btou(v)
			if err != nil {
				return fmt.Errorf("bucket meta: schema: %w", err)
			}
			if got != schemaVersion {
				return fmt.Errorf("store schema version %d, this agent reads version %d", got, schemaVersion)
			}
		} else if err := meta.Put(kSchema, u64(schemaVersion)); err != nil {
			return fmt.Errorf("bucket meta: write schema: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	n, err := s.recoverSending()
	if err != nil {
		return err
	}
	if n > 0 {
		s.opts.Logger.Warn("outbox: messages interrupted mid-send requeued; they may be sent twice", "count", n)
	}
	return nil
}

// privateDir makes an existing directory 0700, as a new one is: it holds
// people's messages. A directory shared by design (sticky or writable by
// all, such as /tmp) or owned by another user is not ours to change, and
// is refused.
func privateDir(dir string, log *slog.Logger) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	mode := fi.Mode()
	if mode.Perm()&0o077 == 0 {
		return nil
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case mode&os.ModeSticky != 0 || mode.Perm()&0o002 != 0:
		return fmt.Errorf("state directory %s is shared (mode %s): give the agent a directory of its own", dir, mode)
	case !ok || int(st.Uid) != os.Geteuid():
		return fmt.Errorf("state directory %s (mode %s) is open to other users and not owned by this user: chmod 700 it, or choose another", dir, mode)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("state directory %s: restrict permissions: %w", dir, err)
	}
	log.Warn("store: state directory was open to other users; restricted to 0700", "dir", dir, "was", mode.Perm())
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// Close releases the file and its lock. Calls after Close return errors.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close %s: %w", s.path, err)
	}
	return nil
}

// Path is the file the store was opened from.
func (s *Store) Path() string { return s.path }

// NextRef returns the next concatenation reference for dest. It is persisted
// so that references do not restart at the same value after a restart, which
// would let a receiver merge parts of two different messages.
func (s *Store) NextRef(dest string) (uint8, error) {
	const op = "next concat ref"
	if err := checkKey("destination", dest); err != nil {
		return 0, wrap(op, bConcatRef, err)
	}
	var ref uint8
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bConcatRef)
		if v := b.Get([]byte(dest)); len(v) == 1 {
			ref = v[0] + 1
		}
		return b.Put([]byte(dest), []byte{ref})
	})
	return ref, wrap(op, bConcatRef, err)
}

// SaveState stores a named blob durably (e.g. the rate limiter's snapshot).
func (s *Store) SaveState(name string, data []byte) error {
	const op = "save state"
	if err := checkKey("state name", name); err != nil {
		return wrap(op, bState, err)
	}
	if err := s.checkPayload(data); err != nil {
		return wrap(op, bState, err)
	}
	return wrap(op, bState, s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bState).Put([]byte(name), data)
	}))
}

// LoadState returns a blob saved with SaveState, or ErrNotFound.
func (s *Store) LoadState(name string) ([]byte, error) {
	const op = "load state"
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bState).Get([]byte(name))
		if v == nil {
			return fmt.Errorf("%w: state %q", ErrNotFound, name)
		}
		out = append([]byte(nil), v...)
		return nil
	})
	return out, wrap(op, bState, err)
}

// PruneResult counts what Prune removed.
type PruneResult struct {
	DedupeIDs int // published MT ids past DedupeWindow
	Outbox    int // finished MO items past Retention
}

// Prune forgets published MT ids older than DedupeWindow and finished MO
// items older than Retention, measured from now. Call it periodically.
func (s *Store) Prune(now time.Time) (PruneResult, error) {
	var r PruneResult
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		if r.DedupeIDs, err = s.evictDedupe(tx, now.Add(-s.opts.DedupeWindow), -1); err != nil {
			return wrap("prune", bExpiry, err)
		}
		if r.Outbox, err = s.evictDone(tx, now.Add(-s.opts.Retention), -1); err != nil {
			return wrap("prune", bOutDone, err)
		}
		return nil
	})
	if err != nil {
		return PruneResult{}, err
	}
	return r, nil
}

func (s *Store) now() time.Time { return s.opts.Clock.Now() }

func (s *Store) checkPayload(rec []byte) error {
	if len(rec) > s.opts.MaxPayload {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(rec), s.opts.MaxPayload)
	}
	return nil
}

func checkKey(what, k string) error {
	if k == "" {
		return fmt.Errorf("%w: empty %s", ErrInvalid, what)
	}
	if len(k) > maxKeyLen {
		return fmt.Errorf("%w: %s is %d bytes, limit %d", ErrInvalid, what, len(k), maxKeyLen)
	}
	return nil
}

func wrap(op string, bucket []byte, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("store: %s (bucket %s): %w", op, bucket, err)
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func btou(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("corrupt value: %d bytes, want 8", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// timeKey makes t sortable as bytes. Times before 1970 (a gateway without a
// real-time clock before NTP) sort first rather than wrapping to the end.
func timeKey(t time.Time, suffix []byte) []byte {
	n := t.UnixNano()
	if t.IsZero() || n < 0 {
		n = 0
	}
	return append(u64(uint64(n)), suffix...)
}

func keyTime(k []byte) (time.Time, error) {
	if len(k) < 8 {
		return time.Time{}, fmt.Errorf("corrupt key: %d bytes, want at least 8", len(k))
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))), nil
}

func count(tx *bolt.Tx, name string) (uint64, error) {
	v := tx.Bucket(bMeta).Get([]byte(name))
	if v == nil {
		return 0, nil
	}
	n, err := btou(v)
	if err != nil {
		return 0, fmt.Errorf("bucket meta: counter %s: %w", name, err)
	}
	return n, nil
}

func addCount(tx *bolt.Tx, name string, delta int64) (uint64, error) {
	n, err := count(tx, name)
	if err != nil {
		return 0, err
	}
	if delta < 0 && uint64(-delta) > n {
		return 0, fmt.Errorf("bucket meta: counter %s would go below zero (%d%+d): store inconsistent", name, n, delta)
	}
	n = uint64(int64(n) + delta)
	if err := tx.Bucket(bMeta).Put([]byte(name), u64(n)); err != nil {
		return 0, fmt.Errorf("bucket meta: counter %s: %w", name, err)
	}
	return n, nil
}
