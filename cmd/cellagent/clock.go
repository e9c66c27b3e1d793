package main

import "cellagent/modem/clock"

// agentClock is the agent's clock: nil (clock.System) except in a binary
// built with the chaosclock tag, which the chaos test uses to step the
// clock of one agent without touching the machine's.
var agentClock clock.Clock
