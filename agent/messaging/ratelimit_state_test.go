package messaging

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cellagent/agent/config"
	"cellagent/agent/ratelimit"
	"cellagent/agent/store"
	"cellagent/modem/clock/clocktest"
)

// A day's worth of sends under a high configured per_day must all be
// accepted: the limiter's saved state once kept one JSON entry per SMS of
// the day and, past the store's 64 KiB payload limit (about 2,045 sends),
// every later Submit failed on saving it.
func TestOutboxHighDailyLimitKeepsAccepting(t *testing.T) {
	cfg, err := config.Parse([]byte("[sms]\nper_minute = 0\nper_hour = 0\nper_day = 5000\nper_destination_per_day = 0\n"), "gw.toml")
	if err != nil {
		t.Fatal(err)
	}
	c := clocktest.New(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), 0)
	lim, err := ratelimit.New(Limits(cfg.SMS), c)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(t.TempDir(), "agent.db"), store.Options{MaxOutbox: 10000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	o, err := NewOutbox(nil, OutboxConfig{Store: st, Limiter: lim})
	if err != nil {
		t.Fatal(err)
	}
	const sends = 3000
	for i := range sends {
		if _, _, err := o.Submit(Request{To: "+4917011", Text: "reading"}); err != nil {
			t.Fatalf("send %d of %d: %v", i+1, sends, err)
		}
		c.Advance(17 * time.Second)
	}
	// The saved budget is still the whole day's: a restart refuses the
	// 5001st SMS of the day, not the first after it.
	lim2, _ := ratelimit.New(Limits(cfg.SMS), c)
	o2, err := NewOutbox(nil, OutboxConfig{Store: st, Limiter: lim2})
	if err != nil {
		t.Fatal(err)
	}
	for i := sends; i < 5000; i++ {
		if _, _, err := o2.Submit(Request{To: "+4917011", Text: "reading"}); err != nil {
			t.Fatalf("send %d after restart: %v", i+1, err)
		}
	}
	if _, _, err := o2.Submit(Request{To: "+4917011", Text: "one too many"}); err == nil {
		t.Fatal("5001st SMS of the day accepted after a restart")
	}
}

// A limiter snapshot the store cannot take must not stop sending: it is
// logged once and Submit goes on accepting within the budgets.
func TestOutboxOversizeLimiterStateLoggedOnce(t *testing.T) {
	lim, err := ratelimit.New(ratelimit.Config{Global: []ratelimit.Window{{Period: 24 * time.Hour, Max: 50}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(t.TempDir(), "agent.db"), store.Options{MaxPayload: 48})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var logs countHandler
	o, err := NewOutbox(nil, OutboxConfig{Store: st, Limiter: lim, Logger: slog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, _, err := o.Submit(Request{To: "+4917011", Text: "x"}); err != nil {
			t.Fatalf("send %d: %v", i+1, err)
		}
	}
	if logs.errors.Load() != 1 {
		t.Fatalf("%d errors logged, want 1", logs.errors.Load())
	}
}

type countHandler struct{ errors atomic.Int32 }

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError && strings.Contains(r.Message, "rate-limit state") {
		h.errors.Add(1)
	}
	return nil
}
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }
