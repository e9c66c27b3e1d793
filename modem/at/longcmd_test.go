package at_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"cellagent/modem/at"
)

// A command as long as a caller makes it (100,000 characters were seen)
// is shortened in the timeout warning and in the error, not logged whole.
func TestLongCommandShortenedInTimeoutWarning(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	a, p := engine(t, at.WithLogger(slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, nil))))
	long := "AT+" + strings.Repeat("X", 100_000)
	ch := start(a, context.Background(), long, at.WithTimeout(200*time.Millisecond))
	p.expect(long + "\r")
	r := wait(t, ch)
	if !errors.Is(r.err, at.ErrTimeout) {
		t.Fatalf("err = %v, want a timeout", r.err)
	}
	if n := len(r.err.Error()); n > 200 {
		t.Errorf("error of %d bytes", n)
	}
	mu.Lock()
	got := buf.String()
	mu.Unlock()
	if !strings.Contains(got, "AT command timed out") {
		t.Fatalf("no timeout warning in %q", got)
	}
	if len(got) > 400 || !strings.Contains(got, "len=100003") {
		t.Errorf("warning of %d bytes, want the command shortened and its length: %.300s", len(got), got)
	}
}
