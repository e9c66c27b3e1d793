package agent

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"cellagent/agent/store"
	"cellagent/modem/clock/clocktest"
)

func TestHousekeepPrunesPastRetentionAndTrims(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := clocktest.New(t0, 0)
	st, err := store.Open(filepath.Join(t.TempDir(), StoreFile), store.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, id := range []string{"old", "recent"} {
		if _, err := st.EnqueueID(id, []byte(`{"to":"+491701234567","text":"x"}`)); err != nil {
			t.Fatal(err)
		}
		if err := st.MarkSending(id); err != nil {
			t.Fatal(err)
		}
		if err := st.MarkSent(id, []int{1}); err != nil {
			t.Fatal(err)
		}
		clock.Advance(6 * 24 * time.Hour)
	}
	// now: eight days after "old" finished, two after "recent".
	trims := 0
	d := newDaemon(Options{Clock: clock, Trim: func() { trims++ }})
	d.st = st

	d.housekeep(false)
	if _, err := st.Get("old"); err != nil {
		t.Errorf("a round without the prune removed the old record: %v", err)
	}
	d.housekeep(true)
	if _, err := st.Get("old"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("finished eight days ago and pruned: Get = %v, want ErrNotFound", err)
	}
	if _, err := st.Get("recent"); err != nil {
		t.Errorf("finished two days ago, within the seven-day retention: %v", err)
	}
	if trims != 2 {
		t.Errorf("Options.Trim called %d times in two rounds, want 2", trims)
	}
}
