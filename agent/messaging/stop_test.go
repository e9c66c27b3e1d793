package messaging

import (
	"context"
	"testing"
	"time"

	"cellagent/agent/store"
	"cellagent/modem/bg96emu"
)

// Stop lets the SMS in flight finish instead of cutting its +CMGS short,
// then ends Run, leaving the rest queued for the next start.
func TestOutboxStopFinishesMessageInFlight(t *testing.T) {
	r := newRig(t, bg96emu.Config{})
	r.m.DelayCommand("AT+CMGS", 400*time.Millisecond)
	o, err := NewOutbox(r.a, OutboxConfig{Store: r.st})
	if err != nil {
		t.Fatal(err)
	}
	first, _, err := o.Submit(Request{To: "5432145", Text: "first"})
	if err != nil {
		t.Fatal(err)
	}
	second, _, err := o.Submit(Request{To: "5432145", Text: "second"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- o.Run(context.Background()) }()
	eventually(t, "first sending", func() bool {
		it, err := r.st.Get(first)
		return err == nil && it.State == store.Sending
	})
	o.Stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after Stop: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Stop")
	}
	if it, _ := r.st.Get(first); it.State != store.Sent {
		t.Errorf("message in flight: %s, want sent", it.State)
	}
	if it, _ := r.st.Get(second); it.State != store.Queued {
		t.Errorf("message behind it: %s, want queued", it.State)
	}
}
