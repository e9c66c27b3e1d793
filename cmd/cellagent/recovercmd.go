package main

import (
	"context"
	"errors"
	"fmt"
)

func runRecover(ctx context.Context, e *env, args []string) error {
	var af agentFlags
	fs := newFlags(e, "recover", "STEP [flags]",
		`Ask the running agent for a step of its recovery ladder, as the MQTT
command cmd/recover does: reattach, cfun-reset, quota, bsc-reset, reboot
or power-cycle. The step's budget and prerequisites apply: a step whose
hourly or daily budget is spent is refused with the time it is next
allowed. The outcome follows as an event ('cellagent status' shows the
ladder).

Examples:
  cellagent recover reattach
  cellagent recover reboot --runtime-dir /tmp/cellagent-run`)
	af.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("give exactly one STEP")}
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	actx, cancel := apiCall(ctx)
	defer cancel()
	if _, err := c.Recover(actx, fs.Arg(0)); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s queued by the agent; its outcome follows as an event\n", fs.Arg(0))
	return nil
}
