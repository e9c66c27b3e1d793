package supervisor

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"cellagent/agent/event"
	"cellagent/modem/clock/clocktest"
)

// An agent that crashes every six minutes during a long outage starts
// each run with the budgets the last one left, so it cannot reattach
// (or anything else) more often than the budgets allow; without the
// saved history it would act on every start.
func TestCrashLoopKeepsBudgets(t *testing.T) {
	t.Parallel()
	lives := func(t *testing.T, r *rig, deps func() Deps) []string {
		r.at(time.Second, lose(r.m))
		for i := 1; i <= 20; i++ {
			s, err := New(r.cfg, deps())
			if err != nil {
				t.Fatal(err)
			}
			r.run(s, time.Duration(i)*6*time.Minute, 20*time.Second)
		}
		var steps []string
		for _, ev := range r.events.taken() {
			steps = append(steps, ev.Attr("step"))
		}
		return steps
	}
	// The loop with the saved history, and the control without a store,
	// side by side.
	var steps, amnesic []string
	var cfg Config
	t.Run("lives", func(t *testing.T) {
		t.Run("saved", func(t *testing.T) {
			t.Parallel()
			r := newRig(t, rigOpts{})
			cfg = r.cfg
			steps = lives(t, r, r.deps)
			checkBudgets(t, r.cfg, r.events.taken())
		})
		t.Run("amnesic", func(t *testing.T) {
			t.Parallel()
			r := newRig(t, rigOpts{})
			amnesic = lives(t, r, func() Deps { d := r.deps(); d.Store = nil; return d })
		})
	})
	if t.Failed() {
		return
	}
	// Two hours of lives: each may reattach at 3m and cfun-reset at 5m.
	n := func(steps []string, name string) int {
		c := 0
		for _, s := range steps {
			if s == name {
				c++
			}
		}
		return c
	}
	if got, max := n(steps, StepReattach), 2*cfg.Steps.Reattach.PerHour; got == 0 || got > max {
		t.Errorf("%d reattaches in 2h of crash loop, want 1..%d", got, max)
	}
	if got, max := n(steps, StepCFUNReset), 2*cfg.Steps.CFUNReset.PerHour; got > max {
		t.Errorf("%d cfun-resets in 2h of crash loop, want at most %d", got, max)
	}
	t.Logf("20 restarts in 2h of outage: %d reattaches and %d cfun-resets with the saved history, %d and %d without",
		n(steps, StepReattach), n(steps, StepCFUNReset), n(amnesic, StepReattach), n(amnesic, StepCFUNReset))
	if n(amnesic, StepReattach) <= n(steps, StepReattach) {
		t.Errorf("without the saved history: %d reattaches, with it %d; the store made no difference", n(amnesic, StepReattach), n(steps, StepReattach))
	}
}

// steppedClock is the rig's clock with the wall reading off by step, as
// after NTP stepped it while the agent was down; the boot clock is not.
type steppedClock struct {
	*clocktest.Fake
	step time.Duration
}

func (c steppedClock) Now() time.Time { return c.Fake.Now().Add(c.step) }

// The same crash loop with the wall clock stepped two hours forward at
// every restart: read as they were written, the saved records would look
// hours old at each start and every life would have full budgets.
func TestCrashLoopKeepsBudgetsAcrossClockSteps(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{})
	r.at(time.Second, lose(r.m))
	for i := 1; i <= 20; i++ {
		step := time.Duration(i) * 2 * time.Hour
		d := r.deps()
		d.Clock = steppedClock{r.clock, step}
		// Events back on the rig's clock, for the budget check.
		d.Emit = func(ev event.Event) {
			ev.Time = ev.Time.Add(-step)
			r.events.add(ev)
		}
		s, err := New(r.cfg, d)
		if err != nil {
			t.Fatal(err)
		}
		r.run(s, time.Duration(i)*6*time.Minute, 20*time.Second)
	}
	checkBudgets(t, r.cfg, r.events.taken())
	n := 0
	for _, ev := range r.events.taken() {
		if ev.Attr("step") == StepReattach {
			n++
		}
	}
	if max := 2 * r.cfg.Steps.Reattach.PerHour; n == 0 || n > max {
		t.Errorf("%d reattaches in 2h of crash loop with the clock stepped at each start, want 1..%d", n, max)
	}
}

// cmd/recover requests are checked when made, run by Run, and budgeted.
func TestRequests(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{})
	s := r.newSupervisor(r.cfg)
	for _, c := range []struct{ step, want string }{
		{"observe", `unknown step "observe" (want one of redial, reattach, cfun-reset, quota, bsc-reset, reboot, power-cycle)`},
		{"reset-everything", "unknown step"},
		{"bsc-reset", "bsc-reset: the operator API is not configured"},
		{"quota", "quota: the operator API is not configured"},
		{"power-cycle", "power-cycle: no power lines are configured"},
		{"redial", "redial: the agent does not own the data bearer"},
	} {
		if err := s.Request(c.step); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Request(%q): %v, want %q", c.step, err, c.want)
		}
	}
	if err := s.Request(StepReattach); err != nil {
		t.Fatal(err)
	}
	if err := s.Request(StepReattach); err == nil || !strings.Contains(err.Error(), "already scheduled") {
		t.Errorf("a second request before the first ran: %v", err)
	}
	var late error
	r.at(time.Minute, func() { late = s.Request(StepReattach) })
	r.at(2*time.Minute, func() { late = s.Request(StepReattach) })
	r.at(3*time.Minute, func() { late = s.Request(StepReattach) })
	r.run(s, 5*time.Minute, 20*time.Second)

	if late == nil || !strings.Contains(late.Error(), "hourly budget (3) used; next allowed at 2025-03-03T01:00:00Z") {
		t.Errorf("a fourth reattach within the hour: %v", late)
	}
	var at []string
	for _, ev := range r.events.taken() {
		if ev.Attr("requested") != "true" || ev.Attr("outcome") != resultDone || !strings.Contains(ev.Msg, "AT+CGATT=0: OK; AT+CGATT=1: OK") {
			t.Errorf("request event %s %v", ev.Msg, ev.Attrs)
		}
		at = append(at, ev.Time.Sub(t0).String())
	}
	if !slices.Equal(at, []string{"0s", "1m0s", "2m0s"}) {
		t.Errorf("requests ran at %v", at)
	}
	snap := s.Snapshot()
	if snap.ActionsToday != 3 || len(snap.LastActions) != 3 || !snap.LastActions[0].Requested || snap.State != StateHealthy {
		t.Errorf("snapshot %+v", snap)
	}
	b, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"state":"healthy"`, `"step":"reattach","per_hour":3,"per_day":12,"hour_left":0,"day_left":9,"next_allowed":"2025-03-03T01:00:00Z"`, `"actions_today":3`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("snapshot JSON lacks %s:\n%s", want, b)
		}
	}
}

// The MQTT connection state counts as the data path when no probe host
// is set: a link that registers but carries no data is down and climbs.
func TestDataPathFromMQTT(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{})
	s := r.newSupervisor(r.cfg)
	s.SetDataPath(true)
	r.at(time.Minute, func() { s.SetDataPath(false) })
	r.at(7*time.Minute, func() { s.SetDataPath(true) })
	r.run(s, 10*time.Minute, 20*time.Second)

	if got := stepsAt(r.events.taken()); !slices.Equal(got, []string{"reattach@4m0s", "cfun-reset@6m0s"}) {
		t.Errorf("steps %v\n%s", got, r.events.dump())
	}
	if got := r.events.states(); !slices.Equal(got, []string{"healthy", "degraded", "down", "healthy"}) {
		t.Errorf("states %v", got)
	}
}

// A corrupt saved history is reported and replaced, not fatal.
func TestCorruptHistory(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{})
	_ = r.store.SaveState(StateName, []byte(`{"v":7}`))
	s := r.newSupervisor(r.cfg)
	r.run(s, time.Minute, 20*time.Second)
	evs := r.events.all()
	if len(evs) == 0 || evs[0].Type != EventAlert || !strings.Contains(evs[0].Attr("error"), "version 7") {
		t.Errorf("events %v", evs)
	}
}
