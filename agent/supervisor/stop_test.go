package supervisor

import (
	"context"
	"testing"
	"time"

	"cellagent/agent/atsession"
	"cellagent/agent/config"
	"cellagent/modem/clock/clocktest"
)

// noSession is a link whose session is down; the test's rungs need none.
type noSession struct{}

func (noSession) Current() (*atsession.Session, error) { return nil, atsession.ErrDown }
func (noSession) Changed() <-chan struct{}             { return make(chan struct{}) }
func (noSession) Restart(string)                       {}

// TestStopDuringAStepTakesNoOther: an agent stopped (systemctl restart,
// shutdown, a watchdog kill) while a step runs must not go on climbing:
// every further rung would be recorded against its budget, reported as
// failed and, for the AT steps, possibly sent to the modem, and the climb
// would end parked with an alert that the restarted agent inherits.
func TestStopDuringAStepTakesNoOther(t *testing.T) {
	saved := ladderSteps
	t.Cleanup(func() { ladderSteps = saved })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var taken []string
	for id := stepRedial; id < numSteps; id++ {
		ladderSteps[id].needs = func(*Supervisor) string { return "" }
		ladderSteps[id].run = func(_ *Supervisor, ctx context.Context) outcome {
			taken = append(taken, stepNames[id])
			cancel() // the agent is told to stop while the step runs
			return failed("%v", ctx.Err())
		}
	}
	s, err := New(config.Default().Supervisor, Deps{Link: noSession{}, Clock: SystemClock(clocktest.New(t0, 0))})
	if err != nil {
		t.Fatal(err)
	}
	s.v = verdict{state: StateDown, problem: probNetwork, reason: "not registered", since: t0.Add(-time.Hour)}
	s.tick(ctx)
	if len(taken) != 1 {
		t.Errorf("steps taken after the stop: %v, want only the one under way", taken)
	}
	if snap := s.Snapshot(); snap.Parked {
		t.Errorf("the ladder parked on the way out: %+v", snap)
	}
}
