package at_test

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A command whose context has already ended is not sent: the supervisor
// on its way out must not reboot the modem (AT+CFUN=1,1) because the
// port happened to be free at that moment.
func TestEndedContextSendsNothing(t *testing.T) {
	a, p := engine(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 20 {
		if _, err := a.Command(ctx, "AT+CFUN=1,1"); !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
	}
	p.quiet(100 * time.Millisecond)
}
