package clock

import (
	"context"
	"errors"
	"testing"
	"time"

	"cellagent/modem/clock/clocktest"
)

func TestBackoff(t *testing.T) {
	s := time.Second
	for _, c := range []struct {
		base, limit time.Duration
		n           int
		want        time.Duration
	}{
		{s, 60 * s, 0, s},
		{s, 60 * s, 1, s},
		{s, 60 * s, 2, 2 * s},
		{s, 60 * s, 6, 32 * s},
		{s, 60 * s, 7, 60 * s},
		{s, 60 * s, 1 << 30, 60 * s},
		{5 * s, 3 * s, 1, 3 * s},
	} {
		if got := Backoff(c.base, c.limit, c.n); got != c.want {
			t.Errorf("Backoff(%s, %s, %d) = %s, want %s", c.base, c.limit, c.n, got, c.want)
		}
	}
}

func TestSleep(t *testing.T) {
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if err := Sleep(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled, zero wait: %v", err)
	}
}

func TestSleepOn(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	c := clocktest.New(t0, 0)
	waited := func() time.Duration { return c.Now().Sub(t0) }
	if err := SleepOn(context.Background(), c, time.Hour); err != nil || waited() != time.Hour {
		t.Fatalf("waited %s, %v", waited(), err)
	}
	if err := SleepOn(context.Background(), c, -time.Second); err != nil || waited() != time.Hour {
		t.Fatalf("negative wait: waited %s, %v", waited(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := SleepOn(ctx, c, time.Hour); !errors.Is(err, context.Canceled) || waited() != time.Hour {
		t.Fatalf("cancelled: waited %s, %v", waited(), err)
	}
	// Woken early by a scheduled function, it waits out the rest; one that
	// ends the context ends the wait at that instant.
	c.AfterFunc(10*time.Minute, func() {})
	if err := SleepOn(context.Background(), c, time.Hour); err != nil || waited() != 2*time.Hour {
		t.Fatalf("woken early: waited %s, %v", waited(), err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	c.AfterFunc(10*time.Minute, cancel2)
	if err := SleepOn(ctx2, c, time.Hour); !errors.Is(err, context.Canceled) || waited() != 2*time.Hour+10*time.Minute {
		t.Fatalf("cancelled midway: waited %s, %v", waited(), err)
	}
	if err := SleepOn(context.Background(), System, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := SleepOn(ctx, System, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("system, cancelled: %v", err)
	}
}
