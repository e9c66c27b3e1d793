package supervisor

import (
	"context"
	"slices"
	"testing"
	"time"

	"cellagent/agent/config"
	"cellagent/modem/clock/clocktest"
)

// TestSnapshotNamesTheStepUnderWay: while a climb's step runs, the
// status names it (SCHEMA.md: "the ladder step being taken or last
// taken"), not the rung before it, which here was skipped.
func TestSnapshotNamesTheStepUnderWay(t *testing.T) {
	saved := ladderSteps
	t.Cleanup(func() { ladderSteps = saved })
	s, err := New(config.Default().Supervisor, Deps{Link: noSession{}, Clock: SystemClock(clocktest.New(t0, 0))})
	if err != nil {
		t.Fatal(err)
	}
	var during []string
	for id := stepRedial; id < numSteps; id++ {
		ladderSteps[id].needs = func(*Supervisor) string {
			if id == stepRedial {
				return "no bearer"
			}
			return ""
		}
		ladderSteps[id].run = func(s *Supervisor, _ context.Context) outcome {
			during = append(during, s.Snapshot().Step)
			return outcome{result: resultDone}
		}
	}
	s.v = verdict{state: StateDown, problem: probNetwork, reason: "not registered", since: t0.Add(-time.Hour)}
	s.tick(context.Background())
	if want := []string{StepReattach}; !slices.Equal(during, want) {
		t.Errorf("step shown while the steps ran: %q, want %q", during, want)
	}
}
