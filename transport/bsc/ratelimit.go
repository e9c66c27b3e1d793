package bsc

import (
	"context"
	"sync"
	"time"
)

// limiter is a token bucket. Each request reserves a token immediately (the
// bucket may go negative) and sleeps off the debt, so concurrent callers are
// served in arrival order without polling.
type limiter struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
	now    func() time.Time
	sleep  func(context.Context, time.Duration) error
}

func newLimiter(rate float64, burst int, now func() time.Time, sleep func(context.Context, time.Duration) error) *limiter {
	return &limiter{rate: rate, burst: float64(burst), tokens: float64(burst), last: now(), now: now, sleep: sleep}
}

func (l *limiter) wait(ctx context.Context) error {
	l.mu.Lock()
	now := l.now()
	if el := now.Sub(l.last).Seconds(); el > 0 {
		l.tokens = min(l.burst, l.tokens+el*l.rate)
	}
	l.last = now
	l.tokens--
	debt := -l.tokens
	l.mu.Unlock()
	if debt <= 0 {
		return nil
	}
	return l.sleep(ctx, time.Duration(debt/l.rate*float64(time.Second)))
}
