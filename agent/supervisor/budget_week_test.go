package supervisor

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"cellagent/agent/event"
)

// checkBudgets verifies every step's actions against its sliding windows
// and minimum interval, and returns the count per step.
func checkBudgets(t *testing.T, cfg Config, taken []event.Event) map[string]int {
	t.Helper()
	times := map[string][]time.Time{}
	for _, ev := range taken {
		if ev.Attr("outcome") == resultThrottled {
			continue
		}
		times[ev.Attr("step")] = append(times[ev.Attr("step")], ev.Time)
	}
	counts := map[string]int{}
	for _, st := range cfg.Steps.Named() {
		ts := times[st.Name]
		counts[st.Name] = len(ts)
		for i, at := range ts {
			inHour, inDay := 0, 0
			for _, x := range ts[:i+1] {
				if x.After(at.Add(-time.Hour)) {
					inHour++
				}
				if x.After(at.Add(-day)) {
					inDay++
				}
			}
			if inHour > st.PerHour || inDay > st.PerDay {
				t.Errorf("%s at %s: %d in the hour (max %d), %d in the day (max %d)", st.Name, at.Sub(t0), inHour, st.PerHour, inDay, st.PerDay)
			}
			if i > 0 && at.Sub(ts[i-1]) < st.MinInterval.Duration {
				t.Errorf("%s at %s: %s after the previous one (min %s)", st.Name, at.Sub(t0), at.Sub(ts[i-1]), st.MinInterval.Duration)
			}
		}
	}
	return counts
}

// A network that never comes back, over a simulated week with the agent
// restarted every simulated day: every step stays within its budgets
// (which the restarts do not reset), the climbs back off, and the ladder
// keeps observing.
func TestPermanentOutageKeepsBudgetsForAWeek(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{bsc: true, power: true, instant: true})
	cfg := r.cfg
	// Polls and observe stretched to keep the week's AT traffic small;
	// a short park and back-off so that the budgets, not the pauses,
	// are what binds.
	cfg.Poll.Duration = 5 * time.Minute
	cfg.UnresponsiveAfter.Duration = 5 * time.Minute
	cfg.BadSignalFor.Duration = 10 * time.Minute
	cfg.Observe.Duration = 10 * time.Minute
	cfg.BackoffMin.Duration = 10 * time.Minute
	cfg.BackoffMax.Duration = time.Hour
	cfg.Park.Duration = 30 * time.Minute
	r.at(time.Minute, lose(r.m))
	start := time.Now()
	var snap Snapshot
	for d := 1; d <= 7; d++ {
		s := r.newSupervisor(cfg)
		r.run(s, time.Duration(d)*day, 40*time.Second)
		snap = s.Snapshot()
	}
	elapsed := time.Since(start)

	taken := r.events.taken()
	counts := checkBudgets(t, cfg, taken)
	var alerts, skips int
	for _, ev := range r.events.all() {
		switch {
		case ev.Type == EventAlert:
			alerts++
		case ev.Type == event.Recovery && ev.Attr("outcome") == resultSkipped:
			skips++
		}
	}
	var b strings.Builder
	for _, st := range cfg.Steps.Named() {
		fmt.Fprintf(&b, " %s=%d (max %d/h, %d/day)", st.Name, counts[st.Name], st.PerHour, st.PerDay)
	}
	t.Logf("a simulated week in %s: %d steps:%s; %d skipped for budget, %d parks", elapsed.Round(time.Millisecond), len(taken), b.String(), skips, alerts)

	// Each step ran, and the daily budgets bound: with a climb every
	// 1-2 hours, more would have run otherwise.
	for _, st := range cfg.Steps.Named() {
		if st.Name == StepRedial {
			// The week's gateway has no bearer of the agent's: redial is
			// skipped (bearer_test.go covers it).
			continue
		}
		if n := counts[st.Name]; n == 0 || n > 7*st.PerDay {
			t.Errorf("%s ran %d times in the week (max %d a day)", st.Name, n, st.PerDay)
		}
	}
	if counts[StepPowerCycle] != 7*cfg.Steps.PowerCycle.PerDay || counts[StepBSCReset] != 7*cfg.Steps.BSCReset.PerDay {
		t.Errorf("power-cycle %d, bsc-reset %d: want the daily budgets used every day", counts[StepPowerCycle], counts[StepBSCReset])
	}
	if skips == 0 || alerts < 7 {
		t.Errorf("%d skips, %d parks: the budgets never bound", skips, alerts)
	}
	if st, _ := r.srv.SIM(r.iccid); st.ResetCount != counts[StepBSCReset] {
		t.Errorf("the platform saw %d resets, the supervisor reported %d", st.ResetCount, counts[StepBSCReset])
	}
	if on := len(r.pins.pwrKey.pulses()); on != counts[StepPowerCycle] {
		t.Errorf("%d PWRKEY presses for %d power-cycles (AT+QPOWD=1 works, so one press each)", on, counts[StepPowerCycle])
	}
	if snap.State != StateDown || snap.ActionsToday == 0 || snap.Rounds == 0 {
		t.Errorf("final snapshot: %s, %d actions today, %d rounds", snap.State, snap.ActionsToday, snap.Rounds)
	}
}
