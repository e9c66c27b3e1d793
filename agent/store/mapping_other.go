//go:build !linux

package store

// ReleaseMap does nothing off Linux, where the project does not run.
func (s *Store) ReleaseMap() error { return nil }

func (d *mappedDB) release() error { return nil }
