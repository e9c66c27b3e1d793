package supervisor

import "time"

// The ladder's policy as pure functions of its state and inputs: which
// rung comes next, and what a step's outcome means for the climb. The
// transition function (next, machine.go) applies them; Run performs what
// it decides: skips, steps, waits.
// The rungs themselves are the ladderSteps table: a new step is a row.

// skipped is a rung passed over, and why.
type skipped struct {
	id  stepID
	why string
}

// nextRung walks up from the rung after pos to the first step that treats
// p and is not blocked (blocked returns why a step cannot run now: its
// prerequisites or budget; "" if it can). It returns the rungs passed over
// on the way, and the one to take; numSteps means none is left: park.
func nextRung(pos stepID, p problem, blocked func(stepID) string) ([]skipped, stepID) {
	var skips []skipped
	for id := pos + 1; id < numSteps; id++ {
		if !ladderSteps[id].treats[p] {
			continue
		}
		if why := blocked(id); why != "" {
			skips = append(skips, skipped{id, why})
			continue
		}
		return skips, id
	}
	return skips, numSteps
}

// afterStepMove is what the climb does once a step has run.
type afterStepMove int

const (
	moveNext  afterStepMove = iota // go on up at once
	moveJudge                      // wait the step's wait, then judge it on fresh evidence
	moveRetry                      // the operator API asked to wait: retry this step then
	moveEnd                        // end the climb: no data left, nothing to climb for
)

// afterStep maps a step's result (and its configured wait) to the move.
func afterStep(result string, wait time.Duration) afterStepMove {
	switch result {
	case resultThrottled:
		return moveRetry
	case resultExhausted:
		return moveEnd
	case resultDone:
		if wait > 0 {
			return moveJudge
		}
	}
	return moveNext
}

// blockedBy says why step id cannot run now: what needs says of its
// prerequisites, else what its budget says; "" if it can.
func blockedBy(needs string, b budget) string {
	if needs != "" {
		return needs
	}
	if b.why == "" {
		return ""
	}
	why := "budget: " + b.why
	if !b.next.IsZero() {
		why += "; next allowed at " + b.next.UTC().Format(time.RFC3339)
	}
	return why
}
