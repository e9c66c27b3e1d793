package store

import (
	"fmt"
	"path/filepath"
	"testing"
)

// Each operation is one fsync'd bbolt transaction; the disk's fsync latency
// dominates these figures, not the store's code.

func benchStore(b *testing.B) *Store {
	b.Helper()
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{MaxInbox: 1 << 24, MaxOutbox: 1 << 24})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

var benchRec = []byte(`{"from":"+4915112345678","scts":"2025-03-01T12:00:00Z","text":"a typical short message of some seventy characters or so, give or take"}`)

func BenchmarkCommit(b *testing.B) {
	s := benchStore(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Commit(fmt.Sprint("id-", i), benchRec); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkEnqueue(b *testing.B) {
	s := benchStore(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Enqueue(benchRec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTelemetryPush(b *testing.B) {
	s := benchStore(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Telemetry().Push(benchRec); err != nil {
			b.Fatal(err)
		}
	}
}
