//go:build chaosclock

package main

import (
	"fmt"
	"os"
	"time"
)

// chaosClockEnv sets the offset of the agent's wall clock from the
// system's, a Go duration. Time read through it keeps the monotonic
// reading, shifted by the same constant, so the offset acts as a step
// made while the agent was down: within the process elapsed time is
// exact, as it is for a Go program whose clock is stepped.
const chaosClockEnv = "CELLAGENT_CHAOS_CLOCK_OFFSET"

// offsetClock reads the system's clock off by a constant; waits are the
// system's.
type offsetClock time.Duration

func (c offsetClock) Now() time.Time                       { return time.Now().Add(time.Duration(c)) }
func (offsetClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

func init() {
	v := os.Getenv(chaosClockEnv)
	if v == "" {
		return
	}
	off, err := time.ParseDuration(v)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cellagent: %s=%q: %v\n", chaosClockEnv, v, err)
		os.Exit(2)
	}
	agentClock = offsetClock(off)
}
