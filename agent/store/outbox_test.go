package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func mustGet(t *testing.T, s *Store, id string) OutboxItem {
	t.Helper()
	it, err := s.Get(id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return it
}

func mustNext(t *testing.T, s *Store, now time.Time) (OutboxItem, bool) {
	t.Helper()
	it, ok, err := s.Next(now)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return it, ok
}

func TestOutboxLifecycle(t *testing.T) {
	s, clk := openTest(t, Options{})
	id, err := s.Enqueue([]byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	it, ok := mustNext(t, s, clk.Now())
	if !ok || it.ID != id || it.State != Queued || string(it.Rec) != "hello" {
		t.Fatalf("Next = %+v, %v", it, ok)
	}
	if err := s.MarkSending(id); err != nil {
		t.Fatal(err)
	}
	if _, ok := mustNext(t, s, clk.Now()); ok {
		t.Fatal("a sending item is handed out again")
	}
	retryAt := clk.Now().Add(30 * time.Second)
	if err := s.MarkRetry(id, retryAt, "+CMS ERROR: 331"); err != nil {
		t.Fatal(err)
	}
	if _, ok := mustNext(t, s, clk.Now()); ok {
		t.Fatal("item handed out before NotBefore")
	}
	if due, ok, err := s.NextDue(); err != nil || !ok || !due.Equal(retryAt) {
		t.Fatalf("NextDue = %s, %v, %v; want %s", due, ok, err, retryAt)
	}
	clk.Advance(30 * time.Second)
	if _, ok := mustNext(t, s, clk.Now()); !ok {
		t.Fatal("item not due at NotBefore")
	}
	if err := s.MarkSending(id); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSent(id, []int{41, 42}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.MarkDeliveredByRef(42, Report{Delivered: true}); err != nil || got != id {
		t.Fatalf("report 42 = %s, %v", got, err)
	}
	if st := mustGet(t, s, id).State; st != Sent {
		t.Fatalf("after one of two parts delivered: %s, want sent", st)
	}
	if _, err := s.MarkDeliveredByRef(42, Report{Delivered: true}); !errors.Is(err, ErrNoMatch) {
		t.Fatalf("duplicate report: %v, want ErrNoMatch", err)
	}
	s = reopen(t, s)
	if _, err := s.MarkDeliveredByRef(41, Report{Delivered: true}); err != nil {
		t.Fatal(err)
	}
	got := mustGet(t, s, id)
	if got.State != Delivered || got.Attempts != 2 || got.LastErr != "+CMS ERROR: 331" {
		t.Fatalf("final item %+v", got)
	}
	if _, ok, _ := s.NextDue(); ok {
		t.Fatal("NextDue reports an item in an empty queue")
	}
}

func TestOutboxFailures(t *testing.T) {
	s, _ := openTest(t, Options{})
	a, _ := s.Enqueue([]byte("a"))
	b, _ := s.Enqueue([]byte("b"))
	if err := s.MarkFailed(a, 0, "rate limit: destination over its daily budget"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSending(b); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSent(b, []int{7}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkDeliveredByRef(7, Report{Delivered: false, Status: 0x41}); err != nil {
		t.Fatal(err)
	}
	got := mustGet(t, s, b)
	if got.State != Failed || got.Code != 0x41 || !strings.Contains(got.Reason, "0x41") {
		t.Fatalf("after failure report %+v", got)
	}
	if it, ok := mustNext(t, s, time.Now()); ok {
		t.Fatalf("failed item still queued: %+v", it)
	}
}

func TestOutboxIllegalTransitions(t *testing.T) {
	s, _ := openTest(t, Options{})
	id, _ := s.Enqueue(nil)
	steps := []struct {
		name string
		do   func() error
		from State
	}{
		{"sent from queued", func() error { return s.MarkSent(id, []int{1}) }, Queued},
		{"retry from queued", func() error { return s.MarkRetry(id, time.Time{}, "") }, Queued},
	}
	for _, c := range steps {
		err := c.do()
		var te *TransitionError
		if !errors.As(err, &te) || te.From != c.from {
			t.Errorf("%s: %v, want TransitionError from %s", c.name, err, c.from)
		}
	}
	_ = s.MarkSending(id)
	_ = s.MarkSent(id, []int{1})
	err := s.MarkSending(id)
	var te *TransitionError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "is sent, cannot become sending") {
		t.Fatalf("sending from sent: %v", err)
	}
	t.Log(err)
	if err := s.MarkFailed(id, 1, "x"); !errors.As(err, &te) {
		t.Fatalf("failed from sent: %v, want TransitionError", err)
	}
	if err := s.MarkSending("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown id: %v, want ErrNotFound", err)
	}
	id2, _ := s.Enqueue(nil)
	_ = s.MarkSending(id2)
	for _, refs := range [][]int{nil, {256}, {-1}} {
		if err := s.MarkSent(id2, refs); !errors.Is(err, ErrInvalid) {
			t.Errorf("MarkSent(%v): %v, want ErrInvalid", refs, err)
		}
	}
	if _, err := s.MarkDeliveredByRef(300, Report{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("report for ref 300: %v, want ErrInvalid", err)
	}
}

// References wrap at 256: a report matches the most recent send with that
// reference, and never one older than ReportWindow.
func TestMessageReferenceWrap(t *testing.T) {
	s, clk := openTest(t, Options{ReportWindow: time.Hour, MaxOutbox: 1000})
	ids := make([]string, 0, 300)
	for i := range 300 {
		id, err := s.Enqueue([]byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.MarkSending(id); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkSent(id, []int{i % 256}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		clk.Advance(time.Second)
	}
	for _, ref := range []int{0, 5, 43, 44, 255} {
		// refs 0..43 were used twice (i, i+256), 44..255 once.
		want := ref
		if ref < 44 {
			want = ref + 256
		}
		got, err := s.MarkDeliveredByRef(ref, Report{Delivered: true})
		if err != nil || got != ids[want] {
			t.Errorf("report %d matched %s, %v; want %s", ref, got, err, ids[want])
		}
	}
	// The next report for 5 finds the previous use, still in window.
	if got, _ := s.MarkDeliveredByRef(5, Report{Delivered: true}); got != ids[5] {
		t.Errorf("second report 5 matched %s, want %s", got, ids[5])
	}
	clk.Advance(time.Hour)
	_, err := s.MarkDeliveredByRef(6, Report{Delivered: true})
	if !errors.Is(err, ErrNoMatch) || !strings.Contains(err.Error(), "report window") {
		t.Fatalf("stale report: %v, want ErrNoMatch beyond the window", err)
	}
	t.Log(err)
}

func TestSendingRecoveredOnOpen(t *testing.T) {
	s, clk := openTest(t, Options{})
	a, _ := s.Enqueue([]byte("a"))
	clk.Advance(time.Second)
	b, _ := s.Enqueue([]byte("b"))
	if err := s.MarkSending(b); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s)
	got := mustGet(t, s, b)
	if got.State != Queued || !strings.Contains(got.LastErr, "may have been sent") {
		t.Fatalf("recovered item %+v", got)
	}
	// The interrupted item is due at once, in its original FIFO place.
	if it, ok := mustNext(t, s, clk.Now()); !ok || it.ID != a {
		t.Fatalf("Next = %s, %v; want %s", it.ID, ok, a)
	}
	_ = s.MarkSending(a)
	if it, ok := mustNext(t, s, clk.Now()); !ok || it.ID != b {
		t.Fatalf("Next = %s, %v; want %s", it.ID, ok, b)
	}
}

func TestOutboxBoundsAndRetention(t *testing.T) {
	s, clk := openTest(t, Options{MaxOutbox: 2, Retention: time.Hour})
	a, _ := s.Enqueue(nil)
	if _, err := s.Enqueue(nil); err != nil {
		t.Fatal(err)
	}
	_, err := s.Enqueue(nil)
	if !errors.Is(err, ErrFull) {
		t.Fatalf("Enqueue into full outbox: %v, want ErrFull", err)
	}
	t.Log(err)
	if err := s.MarkFailed(a, 500, "bad number"); err != nil {
		t.Fatal(err)
	}
	c, err := s.Enqueue(nil) // finished items do not count against the bound
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(30 * time.Minute)
	if r, err := s.Prune(clk.Now()); err != nil || r.Outbox != 0 {
		t.Fatalf("Prune inside retention = %+v, %v", r, err)
	}
	clk.Advance(31 * time.Minute)
	if r, err := s.Prune(clk.Now()); err != nil || r.Outbox != 1 {
		t.Fatalf("Prune past retention = %+v, %v", r, err)
	}
	if _, err := s.Get(a); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get pruned: %v, want ErrNotFound", err)
	}
	// Finished items are capped at MaxOutbox too, oldest first.
	var sent []string
	for range 3 {
		_ = s.MarkSending(c)
		if err := s.MarkSent(c, []int{1}); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, c)
		clk.Advance(time.Second)
		c, _ = s.Enqueue(nil)
	}
	if _, err := s.Get(sent[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("oldest finished item: %v, want evicted", err)
	}
	for _, id := range sent[1:] {
		mustGet(t, s, id)
	}
	// The evicted item's reference is gone from the index too.
	if got, err := s.MarkDeliveredByRef(1, Report{Delivered: true}); err != nil || got != sent[2] {
		t.Fatalf("report 1 = %s, %v; want %s", got, err, sent[2])
	}
	if got, err := s.MarkDeliveredByRef(1, Report{Delivered: true}); err != nil || got != sent[1] {
		t.Fatalf("report 1 = %s, %v; want %s", got, err, sent[1])
	}
	if _, err := s.MarkDeliveredByRef(1, Report{Delivered: true}); !errors.Is(err, ErrNoMatch) {
		t.Fatalf("third report 1: %v, want ErrNoMatch", err)
	}
	checkConsistent(t, s)
}

func TestEnqueueIDDedupe(t *testing.T) {
	s, _ := openTest(t, Options{MaxOutbox: 1, MaxPayload: 4})
	if added, err := s.EnqueueID("req-1", []byte("a")); err != nil || !added {
		t.Fatalf("EnqueueID = %v, %v", added, err)
	}
	if added, err := s.EnqueueID("req-1", []byte("a")); err != nil || added {
		t.Fatalf("redelivered EnqueueID = %v, %v; want false, nil even when full", added, err)
	}
	if _, err := s.EnqueueID("", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("EnqueueID(\"\"): %v", err)
	}
	if _, err := s.Enqueue([]byte("12345")); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Enqueue 5 bytes: %v, want ErrTooLarge", err)
	}
}
