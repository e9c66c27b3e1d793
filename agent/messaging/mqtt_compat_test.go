package messaging_test

import (
	"path/filepath"
	"testing"

	"cellagent/agent/store"
	"cellagent/transport/mqtt"
)

// transport/mqtt does not import the agent; this test does, to prove that
// what the daemon will hand over fits: the store's queues satisfy
// ItemQueue.
var _ mqtt.ItemQueue[store.QueueItem] = (*store.Queue)(nil)

func TestAdaptStoreQueue(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "agent.db"), store.Options{MaxEvents: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	q := mqtt.Adapt(st.Events())
	for _, rec := range []string{"a", "b", "c"} {
		if err := q.Push([]byte(rec)); err != nil {
			t.Fatal(err)
		}
	}
	items, err := q.Peek(10)
	if err != nil || len(items) != 3 || string(items[2].Rec) != "c" || items[2].Seq <= items[0].Seq {
		t.Fatalf("peek = %+v, %v", items, err)
	}
	if n, err := q.Ack(items[1].Seq); err != nil || n != 2 {
		t.Fatalf("ack = %d, %v", n, err)
	}
	if items, _ := q.Peek(10); len(items) != 1 || string(items[0].Rec) != "c" {
		t.Fatalf("after ack = %+v", items)
	}
}
