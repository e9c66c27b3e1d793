package cmdline

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Grace is how long a one-shot command may clean up after a signal
// before the process ends anyway.
const Grace = 5 * time.Second

// Signals returns a context that SIGINT and SIGTERM end, and SIGHUP too
// unless hup is false (the daemon takes SIGHUP as "reload"); a closed
// terminal then ends a command as Ctrl-C does, so its deferred clean-up
// still runs. After the first signal a second one gets the default
// action and ends the process at once. With grace > 0 a command blocked
// in something that takes no context still ends after grace; the daemon
// passes 0, as systemd's TimeoutStopSec bounds its drain.
func Signals(name string, hup bool, grace time.Duration) (context.Context, context.CancelFunc) {
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if hup {
		sigs = append(sigs, syscall.SIGHUP)
	}
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	go func() {
		<-ctx.Done()
		stop()
		if grace <= 0 {
			return
		}
		time.Sleep(grace)
		fmt.Fprintf(os.Stderr, "%s: interrupted; not stopped within %s, exiting\n", name, grace)
		os.Exit(1)
	}()
	return ctx, stop
}
