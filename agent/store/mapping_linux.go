package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// ReleaseMap unmaps the pages of the store file that bbolt's read-only map
// holds resident. bbolt reads through that map, so every page a lookup,
// a cursor or an eviction ever touched stays counted in the process's RSS
// (the kernel maps neighbours too, 64 KiB at a time) until memory runs
// short: with seven days of finished records kept, that is most of the
// file. The pages stay in the page cache; the next read maps them again.
// Writes release the map themselves (at most once a second); this is for
// what reads touched since.
func (s *Store) ReleaseMap() error {
	if err := s.db.release(); err != nil {
		return fmt.Errorf("store: release the map of %s: %w", s.path, err)
	}
	return nil
}

func (d *mappedDB) release() error {
	// A read transaction holds bbolt's map lock shared, so the map cannot
	// move under the call (a growing write remaps with the lock held
	// exclusively), and tx.Size is within it.
	return d.View(func(tx *bolt.Tx) error {
		n := tx.Size()
		if n <= 0 {
			return nil
		}
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, d.Info().Data, uintptr(n), unix.MADV_DONTNEED); e != 0 {
			return fmt.Errorf("madvise: %w", e)
		}
		return nil
	})
}
