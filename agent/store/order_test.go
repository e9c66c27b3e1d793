package store

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Within a group (a destination, for the agent) items leave in the order
// they were accepted: one waiting for its retry holds back those behind
// it, while other groups go on.
func TestOutboxFIFOPerGroupAcrossRetries(t *testing.T) {
	group := func(rec []byte) string { g, _, _ := strings.Cut(string(rec), ":"); return g }
	s, clk := openTest(t, Options{OutboxGroup: group})
	enqueue := func(rec string) string {
		t.Helper()
		id, err := s.Enqueue([]byte(rec))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	a1, a2, b1 := enqueue("A:1"), enqueue("A:2"), enqueue("B:1")
	if it, ok := mustNext(t, s, clk.Now()); !ok || it.ID != a1 {
		t.Fatalf("Next = %s %v, want %s", it.ID, ok, a1)
	}
	if err := s.MarkSending(a1); err != nil {
		t.Fatal(err)
	}
	retryAt := clk.Now().Add(time.Minute)
	if err := s.MarkRetry(a1, retryAt, "network timeout"); err != nil {
		t.Fatal(err)
	}
	if it, ok := mustNext(t, s, clk.Now()); !ok || it.ID != b1 {
		t.Fatalf("with A:1 waiting for its retry, Next = %s %v; want %s (A:2 must wait behind A:1)", it.ID, ok, b1)
	}
	if err := s.MarkSending(b1); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSent(b1, []int{1}); err != nil {
		t.Fatal(err)
	}
	if it, ok := mustNext(t, s, clk.Now()); ok {
		t.Fatalf("Next = %s; A:2 went out before A:1's retry", it.ID)
	}
	if due, ok, err := s.NextDue(); err != nil || !ok || !due.Equal(retryAt) {
		t.Fatalf("NextDue = %s %v %v; want A:1's retry at %s", due, ok, err, retryAt)
	}
	clk.Advance(time.Minute)
	for _, want := range []string{a1, a2} {
		it, ok := mustNext(t, s, clk.Now())
		if !ok || it.ID != want {
			t.Fatalf("Next = %s %v, want %s", it.ID, ok, want)
		}
		if err := s.MarkSending(want); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkSent(want, []int{2}); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkNextFullQueue prints what handing out the next message costs
// with the outbox at its default bound (1000 queued, 50 destinations):
// Next reads the whole queue to find each destination's first item.
func BenchmarkNextFullQueue(b *testing.B) {
	group := func(rec []byte) string { g, _, _ := strings.Cut(string(rec), ":"); return g }
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{OutboxGroup: group})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	for i := range 1000 {
		if _, err := s.Enqueue(fmt.Appendf(nil, "+49170%04d:%s", i%50, benchRec)); err != nil {
			b.Fatal(err)
		}
	}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := s.Next(now); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}
