package bsc

import (
	"context"

	"cellagent/modem/clock"
	"golang.org/x/time/rate"
)

// limiter paces requests with a token bucket. Each request reserves a
// token at once (the bucket may go into debt) and sleeps off the debt, so
// concurrent callers are served in arrival order without polling; time
// is the client's clock, so tests need not wait.
type limiter struct {
	l     *rate.Limiter
	clock clock.Clock
}

func newLimiter(perSecond float64, burst int, c clock.Clock) *limiter {
	return &limiter{l: rate.NewLimiter(rate.Limit(perSecond), burst), clock: c}
}

func (l *limiter) wait(ctx context.Context) error {
	now := l.clock.Now()
	r := l.l.ReserveN(now, 1)
	d := r.DelayFrom(now)
	if d <= 0 {
		return nil
	}
	if err := clock.SleepOn(ctx, l.clock, d); err != nil {
		// The request is not made: its token goes back to the bucket.
		r.CancelAt(l.clock.Now())
		return err
	}
	return nil
}
