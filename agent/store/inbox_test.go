package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func pendingIDs(t *testing.T, s *Store) []string {
	t.Helper()
	items, err := s.Pending(100000)
	if err != nil {
		t.Fatalf("Pending: %v", err)
	}
	var ids []string
	for _, it := range items {
		ids = append(ids, it.ID)
	}
	return ids
}

func mustCommit(t *testing.T, s *Store, id string, wantAdded bool) {
	t.Helper()
	added, err := s.Commit(id, []byte("rec-"+id))
	if err != nil {
		t.Fatalf("Commit(%s): %v", id, err)
	}
	if added != wantAdded {
		t.Fatalf("Commit(%s) added=%v, want %v", id, added, wantAdded)
	}
}

func TestCommitIdempotentOrderedAndDurable(t *testing.T) {
	s, clk := openTest(t, Options{})
	for _, id := range []string{"c", "a", "b"} {
		mustCommit(t, s, id, true)
		clk.Advance(time.Second)
	}
	mustCommit(t, s, "a", false)
	s = reopen(t, s)
	mustCommit(t, s, "c", false)
	if got := strings.Join(pendingIDs(t, s), ","); got != "c,a,b" {
		t.Fatalf("pending %s, want commit order c,a,b", got)
	}
	items, _ := s.Pending(2)
	if len(items) != 2 || string(items[0].Rec) != "rec-c" || items[0].Seq >= items[1].Seq {
		t.Fatalf("Pending(2) = %+v", items)
	}
	if !items[0].Committed.Equal(newFakeClock().Now()) {
		t.Errorf("Committed %s, want the injected clock's time", items[0].Committed)
	}
}

func TestAtLeastOnceAcrossReopen(t *testing.T) {
	s, _ := openTest(t, Options{})
	mustCommit(t, s, "m1", true)
	mustCommit(t, s, "m2", true)
	if err := s.MarkPublished("m1"); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s)
	if got := strings.Join(pendingIDs(t, s), ","); got != "m2" {
		t.Fatalf("pending after reopen %q, want m2 (handed out again until marked)", got)
	}
	if err := s.MarkPublished("m1"); err != nil {
		t.Fatalf("second MarkPublished: %v, want nil", err)
	}
	if err := s.MarkPublished("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("MarkPublished(unknown): %v, want ErrNotFound", err)
	}
}

func TestDedupeWindowAndPrune(t *testing.T) {
	s, clk := openTest(t, Options{DedupeWindow: time.Hour})
	mustCommit(t, s, "m1", true)
	if err := s.MarkPublished("m1"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(59 * time.Minute)
	if r, err := s.Prune(clk.Now()); err != nil || r.DedupeIDs != 0 {
		t.Fatalf("Prune inside window = %+v, %v", r, err)
	}
	// A re-read after a crash between commit and delete-from-SIM.
	mustCommit(t, s, "m1", false)
	clk.Advance(2 * time.Minute)
	if r, err := s.Prune(clk.Now()); err != nil || r.DedupeIDs != 1 {
		t.Fatalf("Prune past window = %+v, %v; want 1 id pruned", r, err)
	}
	if seen, _ := seen(s, "m1"); seen {
		t.Fatal("m1 still seen after pruning")
	}
	mustCommit(t, s, "m1", true)
}

func TestDedupeCountCap(t *testing.T) {
	s, _ := openTest(t, Options{MaxDedupe: 3})
	for i := range 5 {
		id := fmt.Sprint("m", i)
		mustCommit(t, s, id, true)
		if err := s.MarkPublished(id); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range []bool{false, false, true, true, true} {
		if seen, _ := seen(s, fmt.Sprint("m", i)); seen != want {
			t.Errorf("m%d seen=%v, want %v (oldest forgotten first)", i, seen, want)
		}
	}
}

func TestInboxFull(t *testing.T) {
	s, _ := openTest(t, Options{MaxInbox: 2})
	mustCommit(t, s, "a", true)
	mustCommit(t, s, "b", true)
	_, err := s.Commit("c", []byte("x"))
	if !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "leave it on the SIM") {
		t.Fatalf("Commit into full inbox: %v, want ErrFull with advice", err)
	}
	t.Log(err)
	mustCommit(t, s, "a", false) // known ids are not "full"
	if err := s.MarkPublished("a"); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, s, "c", true)
	if _, err := s.PutPart("g", Part{ID: "p1", Seq: 1}); !errors.Is(err, ErrFull) {
		t.Fatalf("PutPart into full inbox: %v, want ErrFull", err)
	}
}

func TestCommitBadInput(t *testing.T) {
	s, _ := openTest(t, Options{MaxPayload: 10})
	for _, c := range []struct {
		id   string
		rec  []byte
		want error
	}{
		{"", nil, ErrInvalid},
		{strings.Repeat("x", 256), nil, ErrInvalid},
		{"ok", make([]byte, 11), ErrTooLarge},
	} {
		if _, err := s.Commit(c.id, c.rec); !errors.Is(err, c.want) {
			t.Errorf("Commit(%.10q, %d bytes): %v, want %v", c.id, len(c.rec), err, c.want)
		}
	}
	if _, err := s.Pending(0); !errors.Is(err, ErrInvalid) {
		t.Errorf("Pending(0): %v, want ErrInvalid", err)
	}
}

func TestPartsSurviveAndJoin(t *testing.T) {
	s, clk := openTest(t, Options{MaxInbox: 10})
	t0 := clk.Now()
	put := func(key, id string, seq int, want bool) {
		t.Helper()
		added, err := s.PutPart(key, Part{ID: id, Seq: seq, Rec: []byte(id), Received: t0.Add(time.Duration(seq) * time.Second)})
		if err != nil || added != want {
			t.Fatalf("PutPart(%s,%s) = %v, %v; want %v", key, id, added, err, want)
		}
	}
	put("orig|7|3", "p3", 3, true)
	put("orig|7|3", "p1", 1, true)
	put("orig|7|3", "p1", 1, false) // re-read of the same SMS
	put("orig|7|3", "p1x", 1, true) // a different SMS with the same part number is kept too
	put("other|9|2", "q2", 2, true)
	s = reopen(t, s)
	groups, err := s.PartGroups()
	if err != nil || len(groups) != 2 {
		t.Fatalf("PartGroups = %+v, %v", groups, err)
	}
	if g := groups[0]; g.Key != "orig|7|3" || g.Count != 3 || !g.First.Equal(t0.Add(time.Second)) {
		t.Errorf("first group %+v", g)
	}
	parts, err := s.Parts("orig|7|3")
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, p := range parts {
		order = append(order, fmt.Sprint(p.Seq, p.ID))
	}
	if got := strings.Join(order, ","); got != "1p1,1p1x,3p3" {
		t.Fatalf("parts order %s", got)
	}
	if err := s.MarkPublished("p1"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("MarkPublished(part): %v, want ErrInvalid", err)
	}
	if _, err := s.CommitGroup("orig|7|3", "p1", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("CommitGroup reusing a part id: %v, want ErrInvalid", err)
	}
	added, err := s.CommitGroup("orig|7|3", "msg", []byte("joined"))
	if err != nil || !added {
		t.Fatalf("CommitGroup = %v, %v", added, err)
	}
	if added, err := s.CommitGroup("orig|7|3", "msg", []byte("joined")); err != nil || added {
		t.Fatalf("CommitGroup again = %v, %v; want false, nil", added, err)
	}
	if _, err := s.Parts("orig|7|3"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Parts after join: %v, want ErrNotFound", err)
	}
	put("orig|7|3", "p3", 3, false) // re-read after join is still recognised
	if got := strings.Join(pendingIDs(t, s), ","); got != "msg" {
		t.Fatalf("pending %s, want msg", got)
	}
	// 1 message + 1 part of the other group: 8 slots left of 10.
	for i := range 8 {
		mustCommit(t, s, fmt.Sprint("fill", i), true)
	}
	if _, err := s.Commit("over", nil); !errors.Is(err, ErrFull) {
		t.Fatalf("Commit past bound: %v, want ErrFull", err)
	}
	if _, err := s.CommitGroup("nope", "x", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("CommitGroup unknown: %v, want ErrNotFound", err)
	}
	checkConsistent(t, s)
}

func TestPutPartBadInput(t *testing.T) {
	s, _ := openTest(t, Options{})
	for _, c := range []struct {
		key string
		p   Part
	}{
		{"", Part{ID: "a", Seq: 1}},
		{"k", Part{ID: "", Seq: 1}},
		{"k", Part{ID: "a", Seq: 0}},
		{"k", Part{ID: "a", Seq: 256}},
	} {
		if _, err := s.PutPart(c.key, c.p); !errors.Is(err, ErrInvalid) {
			t.Errorf("PutPart(%q, %+v): %v, want ErrInvalid", c.key, c.p, err)
		}
	}
}

// seen reports whether the store knows id: pending, held as a part, or
// published within the dedupe window.
func seen(s *Store, id string) (bool, error) {
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bIDs).Get([]byte(id)) != nil
		return nil
	})
	return ok, err
}
