package store

import (
	"errors"
	"fmt"
	"testing"
)

func recs(items []QueueItem) []string {
	var out []string
	for _, it := range items {
		out = append(out, string(it.Rec))
	}
	return out
}

func TestTelemetryDropsOldest(t *testing.T) {
	s, _ := openTest(t, Options{MaxTelemetry: 3})
	q := s.Telemetry()
	for i := range 5 {
		if err := q.Push([]byte(fmt.Sprint("t", i))); err != nil {
			t.Fatal(err)
		}
	}
	s = reopen(t, s)
	q = s.Telemetry()
	items, err := q.Peek(10)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(recs(items)); got != "[t2 t3 t4]" {
		t.Fatalf("queue %s, want the newest three", got)
	}
	if d, err := q.Dropped(); err != nil || d != 2 {
		t.Fatalf("Dropped = %d, %v; want 2 (persisted)", d, err)
	}
	// Items dropped between Peek and Ack must not make Ack remove unsent ones.
	peeked, _ := q.Peek(2) // t2 t3
	_ = q.Push([]byte("t5"))
	_ = q.Push([]byte("t6")) // drops t2, t3
	n, err := q.Ack(peeked[len(peeked)-1].Seq)
	if err != nil || n != 0 {
		t.Fatalf("Ack after drops removed %d, %v; want 0", n, err)
	}
	items, _ = q.Peek(10)
	if got := fmt.Sprint(recs(items)); got != "[t4 t5 t6]" {
		t.Fatalf("queue %s", got)
	}
	if n, err := q.Ack(items[1].Seq); err != nil || n != 2 {
		t.Fatalf("Ack = %d, %v; want 2", n, err)
	}
	if l, _ := q.Len(); l != 1 {
		t.Fatalf("Len = %d, want 1", l)
	}
	if _, err := q.Peek(0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Peek(0): %v, want ErrInvalid", err)
	}
}

func TestEventsRefuseWhenFull(t *testing.T) {
	s, _ := openTest(t, Options{MaxEvents: 2, MaxPayload: 8})
	q := s.Events()
	_ = q.Push([]byte("e1"))
	_ = q.Push([]byte("e2"))
	err := q.Push([]byte("e3"))
	if !errors.Is(err, ErrFull) {
		t.Fatalf("Push into full events queue: %v, want ErrFull", err)
	}
	t.Log(err)
	if d, _ := q.Dropped(); d != 0 {
		t.Fatalf("events dropped %d", d)
	}
	items, _ := q.Peek(5)
	if _, err := q.Ack(items[0].Seq); err != nil {
		t.Fatal(err)
	}
	if err := q.Push([]byte("e3")); err != nil {
		t.Fatal(err)
	}
	if err := q.Push(make([]byte, 9)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Push 9 bytes: %v, want ErrTooLarge", err)
	}
}

// The feed is read by position: readers keep cursors, nothing is removed
// by reading, positions survive a reopen, and a reader that fell behind
// the drop-oldest bound sees the jump in Seq.
func TestFeedReadByCursor(t *testing.T) {
	s, _ := openTest(t, Options{MaxFeed: 3})
	q := s.Feed()
	if last, err := q.Last(); err != nil || last != 0 {
		t.Fatalf("Last of an empty feed = %d, %v", last, err)
	}
	for i := range 5 {
		if err := q.Push([]byte(fmt.Sprint("f", i))); err != nil {
			t.Fatal(err)
		}
	}
	s = reopen(t, s)
	q = s.Feed()
	all, err := q.After(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(recs(all)); got != "[f2 f3 f4]" || all[0].Seq != 3 {
		t.Fatalf("After(0) = %s from seq %d, want [f2 f3 f4] from 3", got, all[0].Seq)
	}
	again, _ := q.After(3, 1)
	if got := fmt.Sprint(recs(again)); got != "[f3]" || again[0].Seq != 4 {
		t.Fatalf("After(3, 1) = %s, want [f3] at seq 4", got)
	}
	if last, err := q.Last(); err != nil || last != 5 {
		t.Fatalf("Last = %d, %v; want 5", last, err)
	}
	if none, err := q.After(5, 10); err != nil || len(none) != 0 {
		t.Fatalf("After(last) = %v, %v", recs(none), err)
	}
	if none, err := q.After(^uint64(0), 10); err != nil || len(none) != 0 {
		t.Fatalf("After(max) = %v, %v", recs(none), err)
	}
	if _, err := q.After(0, 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("After(0, 0) = %v, want ErrInvalid", err)
	}
}
