package bsc

import (
	"context"
	"time"

	"golang.org/x/time/rate"
)

// limiter paces requests with a token bucket. Each request reserves a
// token at once (the bucket may go into debt) and sleeps off the debt, so
// concurrent callers are served in arrival order without polling; time
// comes from the client's hooks so tests need not wait.
type limiter struct {
	l     *rate.Limiter
	now   func() time.Time
	sleep func(context.Context, time.Duration) error
}

func newLimiter(perSecond float64, burst int, now func() time.Time, sleep func(context.Context, time.Duration) error) *limiter {
	return &limiter{l: rate.NewLimiter(rate.Limit(perSecond), burst), now: now, sleep: sleep}
}

func (l *limiter) wait(ctx context.Context) error {
	now := l.now()
	r := l.l.ReserveN(now, 1)
	d := r.DelayFrom(now)
	if d <= 0 {
		return nil
	}
	if err := l.sleep(ctx, d); err != nil {
		// The request is not made: its token goes back to the bucket.
		r.CancelAt(l.now())
		return err
	}
	return nil
}
