package store

import (
	"encoding/json"
	"testing"
)

// Every outcome lands in the results journal in the transaction that makes
// it, in order, and stays there until acknowledged: across a reopen too.
func TestResultsJournal(t *testing.T) {
	notified := 0
	s, clk := openTest(t, Options{OnResult: func() { notified++ }})
	a, _ := s.Enqueue([]byte("a"))
	b, _ := s.Enqueue([]byte("b"))
	for _, id := range []string{a, b} {
		if err := s.MarkSending(id); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.MarkSent(a, []int{7, 8}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkFailed(b, 500, "+CMS ERROR: 500"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(1)
	if _, err := s.MarkDeliveredByRef(7, Report{Delivered: true}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Results().Len(); n != 2 {
		t.Errorf("one part of two delivered: %d results, want 2 (no partial outcome)", n)
	}
	if _, err := s.MarkDeliveredByRef(8, Report{Delivered: true}); err != nil {
		t.Fatal(err)
	}
	if notified != 3 {
		t.Errorf("OnResult called %d times, want 3", notified)
	}

	path := s.Path()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	items, err := s.Results().Peek(10)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id    string
		state State
	}{{a, Sent}, {b, Failed}, {a, Delivered}}
	if len(items) != len(want) {
		t.Fatalf("%d results, want %d", len(items), len(want))
	}
	for i, w := range want {
		var it OutboxItem
		if err := json.Unmarshal(items[i].Rec, &it); err != nil {
			t.Fatal(err)
		}
		if it.ID != w.id || it.State != w.state {
			t.Errorf("result %d: %s %s, want %s %s", i, it.ID, it.State, w.id, w.state)
		}
	}
	if n, err := s.Results().Ack(items[1].Seq); err != nil || n != 2 {
		t.Fatalf("ack: %d %v", n, err)
	}
	if n, _ := s.Results().Len(); n != 1 {
		t.Errorf("%d results after ack, want 1", n)
	}
}
