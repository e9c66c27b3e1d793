package store

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// mappedKiB is how much of the file at path this process's maps hold
// resident, from /proc/self/smaps.
func mappedKiB(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	kib, in := 0, false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			in = len(f) >= 6 && f[len(f)-1] == path
			continue
		}
		if in && f[0] == "Rss:" && len(f) >= 2 {
			n, _ := strconv.Atoi(f[1])
			kib += n
		}
	}
	return kib
}

// fill writes n published MT ids and reads them all back, so that the
// map holds most of the file.
func fill(t *testing.T, s *Store, n int) {
	t.Helper()
	err := s.db.DB.Update(func(tx *bolt.Tx) error {
		for i := range n {
			if _, err := s.commitTx(tx, fmt.Sprintf("%032x", i*7919), []byte("rec")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			return b.ForEach(func(_, _ []byte) error { return nil })
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestReleaseMapUnmapsTheFile(t *testing.T) {
	s, _ := openTest(t, Options{MaxInbox: 20000})
	fill(t, s, 10000)
	before := mappedKiB(t, s.Path())
	if before < 256 {
		t.Fatalf("after reading 10,000 records %d KiB of the store are mapped; the test needs a map to release", before)
	}
	if err := s.ReleaseMap(); err != nil {
		t.Fatal(err)
	}
	after := mappedKiB(t, s.Path())
	if after > before/8 {
		t.Errorf("ReleaseMap: %d KiB of the store still mapped, was %d", after, before)
	}
	// The store still reads what it holds.
	if items, err := s.Pending(5); err != nil || len(items) != 5 {
		t.Errorf("Pending(5) after ReleaseMap = %d items, %v; want 5", len(items), err)
	}
}

func TestWritesReleaseTheMap(t *testing.T) {
	s, _ := openTest(t, Options{MaxInbox: 20000})
	fill(t, s, 10000)
	before := mappedKiB(t, s.Path())
	// A write releases the map unless one did within releaseEvery.
	s.db.last.Store(int64(time.Since(mapEpoch) - releaseEvery))
	if err := s.SaveState("x", []byte("y")); err != nil {
		t.Fatal(err)
	}
	if after := mappedKiB(t, s.Path()); after > before/8 {
		t.Errorf("after a write %d KiB of the store still mapped, was %d", after, before)
	}
}
