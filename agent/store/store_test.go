package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"cellagent/modem/clock/clocktest"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	os.Exit(m.Run())
}

func newFakeClock() *clocktest.Fake {
	return clocktest.New(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), 0)
}

func openAt(t *testing.T, path string, o Options) *Store {
	t.Helper()
	s, err := Open(path, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func openTest(t *testing.T, o Options) (*Store, *clocktest.Fake) {
	t.Helper()
	clk := newFakeClock()
	if o.Clock == nil {
		o.Clock = clk
	}
	return openAt(t, filepath.Join(t.TempDir(), "state", "store.db"), o), clk
}

// reopen closes s and opens its file again with the same options.
func reopen(t *testing.T, s *Store) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return openAt(t, s.path, s.opts)
}

// checkConsistent runs bbolt's page-level checker.
func checkConsistent(t *testing.T, s *Store) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	if err != nil {
		t.Fatalf("bbolt check: %v", err)
	}
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	s := openAt(t, filepath.Join(dir, "store.db"), Options{})
	for _, c := range []struct {
		path string
		want os.FileMode
	}{{dir, 0o700}, {s.Path(), 0o600}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != c.want {
			t.Errorf("%s: mode %o, want %o", c.path, got, c.want)
		}
	}
}

func TestOpenTightensExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s := openAt(t, path, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	openAt(t, path, Options{})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("mode %o after reopen, want 600", got)
	}
}

func TestOpenLocked(t *testing.T) {
	s, _ := openTest(t, Options{})
	start := time.Now()
	_, err := Open(s.Path(), Options{LockTimeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "store in use by another process") {
		t.Errorf("error %q does not say the store is in use", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("second Open took %s, want about the lock timeout", d)
	}
	t.Log(err)
}

func TestOpenBadOptions(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "s.db"), Options{MaxInbox: -1})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "MaxInbox") {
		t.Fatalf("Open with MaxInbox -1: %v, want ErrInvalid naming MaxInbox", err)
	}
}

func TestOpenWrongSchema(t *testing.T) {
	s, _ := openTest(t, Options{})
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bMeta).Put(kSchema, u64(99)) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := Open(s.path, Options{})
	if err == nil || !strings.Contains(err.Error(), "schema version 99") {
		t.Fatalf("Open of schema 99: %v, want a schema error", err)
	}
}

func TestOpenNotABoltFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a database ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, Options{})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open of junk: %v, want an error naming the file", err)
	}
	t.Log(err)
}

func TestNextRefPersistsAndWraps(t *testing.T) {
	s, _ := openTest(t, Options{})
	for want := range 3 {
		got, err := s.NextRef("+4912345")
		if err != nil || got != uint8(want) {
			t.Fatalf("NextRef = %d, %v; want %d", got, err, want)
		}
	}
	s = reopen(t, s)
	if got, _ := s.NextRef("+4912345"); got != 3 {
		t.Fatalf("after reopen NextRef = %d, want 3", got)
	}
	if got, _ := s.NextRef("5432145"); got != 0 {
		t.Fatalf("other destination starts at %d, want 0", got)
	}
	for range 252 {
		if _, err := s.NextRef("+4912345"); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := s.NextRef("+4912345"); got != 0 {
		t.Fatalf("after 255 NextRef = %d, want wrap to 0", got)
	}
	if _, err := s.NextRef(""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("NextRef(\"\"): %v, want ErrInvalid", err)
	}
}

func TestState(t *testing.T) {
	s, _ := openTest(t, Options{MaxPayload: 16})
	if _, err := s.LoadState("ratelimit"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LoadState of nothing: %v, want ErrNotFound", err)
	}
	if err := s.SaveState("ratelimit", []byte("snap")); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s)
	got, err := s.LoadState("ratelimit")
	if err != nil || string(got) != "snap" {
		t.Fatalf("LoadState = %q, %v", got, err)
	}
	if err := s.SaveState("big", make([]byte, 17)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("SaveState 17 bytes: %v, want ErrTooLarge", err)
	}
}

func TestClosedStoreErrors(t *testing.T) {
	s, _ := openTest(t, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := s.Commit("x", nil)
	if err == nil || !strings.Contains(err.Error(), "inbox commit") {
		t.Fatalf("Commit after Close: %v, want an error naming the operation", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	s, _ := openTest(t, Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				id := fmt.Sprintf("w%d-%d", w, i)
				if _, err := s.Commit(id, []byte(id)); err != nil {
					errs <- err
				}
				if _, err := s.Enqueue([]byte(id)); err != nil {
					errs <- err
				}
				if err := s.Telemetry().Push([]byte(id)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	items, err := s.Pending(1000)
	if err != nil || len(items) != 80 {
		t.Fatalf("Pending: %d items, %v; want 80", len(items), err)
	}
	checkConsistent(t, s)
}
