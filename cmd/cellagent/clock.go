package main

import "time"

// clockNow is the agent's wall clock: nil (the system's) except in a
// binary built with the chaosclock tag, which the chaos test uses to step
// the clock of one agent without touching the machine's.
var clockNow func() time.Time
