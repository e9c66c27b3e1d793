package supervisor

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"cellagent/agent/config"
	"cellagent/agent/event"
)

// The ladder's policy as table tests of next: every phase with the events
// that move it, without a modem, a goroutine or a clock.

var (
	m  = time.Minute
	mt = func(d time.Duration) time.Time { return t0.Add(d) }
)

// testPolicy: observe 3m, waits redial 1m, reattach and cfun-reset 2m,
// quota 0, bsc-reset 5m, reboot 3m, power-cycle 5m; back-off 5m doubling
// to 1h, park 30m, quota recheck 1h.
func testPolicy(*testing.T) policyConfig {
	return policyConfig{observe: 3 * m, park: 30 * m, backoffMin: 5 * m, backoffMax: time.Hour, quotaRecheck: time.Hour,
		waits: [numSteps]time.Duration{stepRedial: m, stepReattach: 2 * m, stepCFUNReset: 2 * m, stepBSCReset: 5 * m, stepReboot: 3 * m, stepPowerCycle: 5 * m}}
}

// down is a confirmed network outage seen since 1m.
var down = verdict{state: StateDown, problem: probNetwork, reason: "not registered (searching) for 2m0s", since: mt(m)}

// in builds inputs: v, healthy, and what lacks: "redial=no bearer" says
// the redial step needs a bearer; "reattach=budget:hourly budget (3) used"
// that its budget is spent (until 1h).
func in(p policyConfig, v verdict, lacks ...string) policyInputs {
	pi := policyInputs{cfg: p, v: v, healthy: v.state == StateHealthy}
	for id := stepRedial; id < numSteps; id++ {
		pi.budgets[id] = budget{hourLeft: 1, dayLeft: 1}
	}
	for _, l := range lacks {
		name, why, _ := strings.Cut(l, "=")
		id, ok := stepByName(name)
		if !ok {
			panic(name)
		}
		if b, ok := strings.CutPrefix(why, "budget:"); ok {
			pi.budgets[id] = budget{why: b, next: mt(time.Hour)}
			continue
		}
		pi.needs[id] = why
	}
	return pi
}

func describe(acts []ladderAction) []string {
	var out []string
	for _, a := range acts {
		s := a.kind.String()
		switch a.kind {
		case actTake:
			s += " " + stepNames[a.step] + " (" + a.reason + ")"
		case actSkip:
			s += " " + stepNames[a.step] + ": " + a.why
		case actEmit:
			s += " " + a.typ + "/" + a.level + ": " + a.msg
		}
		if a.requested {
			s += " requested"
		}
		out = append(out, s)
	}
	return out
}

func TestLadderNext(t *testing.T) {
	p := testPolicy(t)
	const noBearer = "redial=the agent does not own the data bearer"
	const skipRedial = "skip redial: the agent does not own the data bearer"
	// climbing is a climb that took reattach at 4m and waits to judge it.
	climbing := ladder{phase: phaseJudging, acted: true, pos: stepReattach, due: mt(6 * m), dueWhat: "judge reattach, then the next step",
		rounds: 1, since: mt(m), steps: 1, last: stepReattach, prob: probNetwork, reason: down.reason}
	observing := ladder{phase: phaseObserving, pos: stepObserve, due: mt(4 * m), dueWhat: "climb the ladder", since: mt(m), last: stepObserve}
	taking := func(l ladder, id stepID) ladder {
		l.phase, l.taking, l.climbing = phaseRecovering, id, true
		return l
	}
	done := func(id stepID, result string) ladderEvent {
		return ladderEvent{kind: evStepDone, step: id, out: outcome{result: result}}
	}
	evidence := ladderEvent{kind: evEvidence}
	quotaV := verdict{state: StateQuota, reason: "the data quota is exhausted; no reset can refill it", since: mt(8 * m)}
	faultV := verdict{state: StateConfigFault, reason: "dial: NO CARRIER (Missing or unknown APN); fix the configuration and reload (no reset can help)", since: mt(2 * m)}
	healthy := verdict{state: StateHealthy, since: mt(5 * m)}

	for _, c := range []struct {
		name string
		from ladder
		ev   ladderEvent
		at   time.Duration
		in   policyInputs
		// want is the state after; acts what it does.
		want ladder
		acts []string
	}{
		{
			name: "idle: degraded, not confirmed: nothing to do",
			from: ladder{}, ev: evidence, at: m,
			in:   in(p, verdict{state: StateDegraded, reason: "weak signal (not yet confirmed)"}),
			want: ladder{},
		},
		{
			name: "idle: an outage confirmed waits out the observe grace",
			from: ladder{goodSince: mt(0)}, ev: evidence, at: 2 * m, in: in(p, down),
			want: observing,
			acts: []string{"emit recovery/warn: observe: outage confirmed (not registered (searching) for 2m0s); next step not before 2025-03-03T00:04:00Z"},
		},
		{
			name: "idle: the grace starts after the back-off and the park",
			from: ladder{rounds: 2, nextRound: mt(20 * m), parkedUntil: mt(30 * m)}, ev: evidence, at: 2 * m, in: in(p, down),
			want: ladder{phase: phaseObserving, rounds: 2, nextRound: mt(20 * m), parkedUntil: mt(30 * m), due: mt(30 * m), dueWhat: "climb the ladder", since: mt(m)},
			acts: []string{"emit recovery/warn: observe: outage confirmed (not registered (searching) for 2m0s); next step not before 2025-03-03T00:30:00Z"},
		},
		{
			name: "observing: before due, nothing",
			from: observing, ev: evidence, at: 3 * m, in: in(p, down),
			want: observing,
		},
		{
			name: "observing: healed during observe, without a step or a back-off",
			from: observing, ev: evidence, at: 3 * m, in: in(p, healthy),
			want: ladder{phase: phaseIdle, goodSince: mt(3 * m), since: mt(m), last: stepObserve},
			acts: []string{"save", "emit recovery/info: link healed during observe, without action, outage 2m0s"},
		},
		{
			name: "observing: at due the first rung the problem calls for; redial skipped without a bearer",
			from: observing, ev: evidence, at: 4 * m, in: in(p, down, noBearer),
			want: ladder{phase: phaseRecovering, taking: stepReattach, climbing: true, acted: true, rounds: 1, pos: stepRedial,
				due: mt(4 * m), dueWhat: "climb the ladder", since: mt(m), last: stepObserve, prob: probNetwork, reason: down.reason},
			acts: []string{skipRedial, "take reattach (not registered (searching) for 2m0s)"},
		},
		{
			name: "observing: a modem that does not answer starts at reboot",
			from: observing, ev: evidence, at: 4 * m,
			in: in(p, verdict{state: StateUnresponsive, problem: probModem, reason: "AT not answering", since: mt(m)}),
			want: ladder{phase: phaseRecovering, taking: stepReboot, climbing: true, acted: true, rounds: 1, pos: stepObserve,
				due: mt(4 * m), dueWhat: "climb the ladder", since: mt(m), last: stepObserve, prob: probModem, reason: "AT not answering"},
			acts: []string{"take reboot (AT not answering)"},
		},
		{
			name: "recovering: a step done with a wait is judged after it",
			from: taking(ladder{acted: true, rounds: 1, pos: stepRedial, since: mt(m), prob: probNetwork, reason: down.reason}, stepReattach),
			ev:   done(stepReattach, resultDone), at: 4 * m, in: in(p, down),
			want: climbing,
		},
		{
			name: "judging: before the wait is over, nothing",
			from: climbing, ev: evidence, at: 5 * m, in: in(p, down),
			want: climbing,
		},
		{
			name: "judging: the wait over and still down: the next rung, on the verdict of now",
			from: climbing, ev: evidence, at: 6 * m, in: in(p, down),
			want: func() ladder { l := taking(climbing, stepCFUNReset); return l }(),
			acts: []string{"take cfun-reset (not registered (searching) for 2m0s)"},
		},
		{
			name: "judging: healed after a step: recovered, and the next climb backs off",
			from: climbing, ev: evidence, at: 5 * m, in: in(p, healthy),
			want: ladder{phase: phaseIdle, rounds: 1, nextRound: mt(10 * m), goodSince: mt(5 * m), since: mt(m), steps: 1, last: stepReattach,
				prob: probNetwork, reason: down.reason},
			acts: []string{"save", "emit recovery/info: link recovered after reattach (1 steps), outage 4m0s"},
		},
		{
			name: "recovering: a failed step goes on up at once; spent budgets are skipped with when they free",
			from: taking(climbing, stepCFUNReset),
			ev:   done(stepCFUNReset, resultFailed), at: 6 * m,
			in: in(p, down, "quota=the operator API is not configured ([bsc] base_url)", "bsc-reset=the operator API is not configured ([bsc] base_url)",
				"reboot=budget:hourly budget (1) used"),
			want: func() ladder {
				l := taking(climbing, stepPowerCycle)
				l.pos, l.steps, l.last = stepReboot, 2, stepCFUNReset
				return l
			}(),
			acts: []string{
				"skip quota: the operator API is not configured ([bsc] base_url)",
				"skip bsc-reset: the operator API is not configured ([bsc] base_url)",
				"skip reboot: budget: hourly budget (1) used; next allowed at 2025-03-03T01:00:00Z",
				"take power-cycle (not registered (searching) for 2m0s)",
			},
		},
		{
			name: "recovering: throttled: retry the same step when the API said, at no step's cost",
			from: taking(climbing, stepBSCReset),
			ev:   ladderEvent{kind: evStepDone, step: stepBSCReset, out: outcome{result: resultThrottled, retryAt: mt(18 * m)}}, at: 8 * m, in: in(p, down),
			want: func() ladder {
				l := climbing
				l.phase, l.due, l.dueWhat = phaseRetrying, mt(18*m), "retry bsc-reset (operator API asked to wait)"
				return l
			}(),
		},
		{
			name: "retrying: at due the throttled step again",
			from: func() ladder {
				l := climbing
				l.pos, l.phase, l.due, l.dueWhat = stepQuota, phaseRetrying, mt(18*m), "retry bsc-reset (operator API asked to wait)"
				return l
			}(),
			ev: evidence, at: 18 * m, in: in(p, down),
			want: func() ladder {
				l := taking(climbing, stepBSCReset)
				l.pos, l.due, l.dueWhat = stepQuota, mt(18*m), "retry bsc-reset (operator API asked to wait)"
				return l
			}(),
			acts: []string{"take bsc-reset (not registered (searching) for 2m0s)"},
		},
		{
			name: "recovering: the quota step found the API unreachable: bsc-reset is skipped, not called",
			from: taking(climbing, stepQuota),
			ev:   ladderEvent{kind: evStepDone, step: stepQuota, out: outcome{result: resultFailed, bscDown: "dial tcp: i/o timeout"}}, at: 8 * m,
			in: in(p, down),
			want: func() ladder {
				l := taking(climbing, stepReboot)
				l.pos, l.steps, l.last, l.bscDown = stepBSCReset, 2, stepQuota, "dial tcp: i/o timeout"
				return l
			}(),
			acts: []string{"skip bsc-reset: the operator API is unreachable (dial tcp: i/o timeout)", "take reboot (not registered (searching) for 2m0s)"},
		},
		{
			name: "recovering: an exhausted quota ends the climb; no reset refills a bundle",
			from: taking(climbing, stepQuota),
			ev:   done(stepQuota, resultExhausted), at: 8 * m, in: in(p, down),
			want: ladder{phase: phaseIdle, rounds: 1, nextRound: mt(13 * m), since: mt(m), steps: 2, last: stepQuota,
				prob: probNetwork, reason: down.reason, quotaCheck: mt(68 * m)},
			acts: []string{"save"},
		},
		{
			name: "recovering: nothing left above: park with an alert, spaced by the back-off of the rounds so far",
			from: func() ladder { l := taking(climbing, stepPowerCycle); l.rounds = 4; return l }(),
			ev:   done(stepPowerCycle, resultFailed), at: 20 * m, in: in(p, down),
			// back-off after 4 rounds: 5m·2³ = 40m, beyond the 30m park.
			want: func() ladder {
				l := climbing
				l.phase, l.rounds, l.acted, l.pos, l.steps, l.last = phaseParked, 4, false, stepObserve, 2, stepPowerCycle
				l.nextRound, l.parkedUntil, l.due, l.dueWhat = mt(60*m), mt(60*m), mt(60*m), "climb again after the park"
				return l
			}(),
			acts: []string{"save", "emit alert/error: recovery ladder reached the top without success (not registered (searching) for 2m0s); parked until 2025-03-03T01:00:00Z, still observing"},
		},
		{
			name: "parked: at due the climb starts again from the bottom, without a new outage",
			from: ladder{phase: phaseParked, rounds: 1, pos: stepObserve, parkedUntil: mt(40 * m), nextRound: mt(15 * m), due: mt(40 * m),
				dueWhat: "climb again after the park", since: mt(m), steps: 6, last: stepPowerCycle, prob: probNetwork, reason: down.reason},
			ev: evidence, at: 40 * m, in: in(p, down, noBearer),
			want: ladder{phase: phaseRecovering, taking: stepReattach, climbing: true, acted: true, rounds: 2, pos: stepRedial, nextRound: mt(15 * m),
				due: mt(40 * m), dueWhat: "climb again after the park", since: mt(m), steps: 6, last: stepPowerCycle, prob: probNetwork, reason: down.reason},
			acts: []string{skipRedial, "take reattach (not registered (searching) for 2m0s)"},
		},
		{
			name: "parked: healed: recovered, and the park is over",
			from: ladder{phase: phaseParked, rounds: 1, parkedUntil: mt(40 * m), nextRound: mt(15 * m), due: mt(40 * m), dueWhat: "climb again after the park",
				since: mt(m), steps: 6, last: stepPowerCycle},
			ev: evidence, at: 30 * m, in: in(p, healthy),
			want: ladder{phase: phaseIdle, rounds: 1, nextRound: mt(15 * m), goodSince: mt(30 * m), since: mt(m), steps: 6, last: stepPowerCycle},
			acts: []string{"save", "emit recovery/info: link recovered after power-cycle (6 steps), outage 29m0s"},
		},
		{
			name: "idle: good, first seen: remember since when",
			from: ladder{rounds: 3}, ev: evidence, at: 30 * m, in: in(p, healthy),
			want: ladder{rounds: 3, goodSince: mt(30 * m)},
		},
		{
			name: "idle: good for less than backoff_max: the rounds stay",
			from: ladder{rounds: 3, goodSince: mt(30 * m)}, ev: evidence, at: 89 * m, in: in(p, healthy),
			want: ladder{rounds: 3, goodSince: mt(30 * m)},
		},
		{
			name: "idle: good for backoff_max: the rounds are forgotten",
			from: ladder{rounds: 3, goodSince: mt(30 * m)}, ev: evidence, at: 90 * m, in: in(p, healthy),
			want: ladder{goodSince: mt(30 * m)},
			acts: []string{"save"},
		},
		{
			name: "judging: a config fault ends the climb with one alert",
			from: climbing, ev: evidence, at: 5 * m, in: in(p, faultV),
			want: ladder{phase: phaseConfigFault, rounds: 1, nextRound: mt(10 * m), since: mt(m), steps: 1, last: stepReattach,
				prob: probNetwork, reason: down.reason, faultAlerted: faultV.reason},
			acts: []string{"save", "emit alert/error: configuration fault: " + faultV.reason + "; the recovery ladder stops"},
		},
		{
			name: "config fault: the same fault again: no second alert, no step",
			from: ladder{phase: phaseConfigFault, faultAlerted: faultV.reason}, ev: evidence, at: 10 * m, in: in(p, faultV),
			want: ladder{phase: phaseConfigFault, faultAlerted: faultV.reason},
		},
		{
			name: "config fault: another fault is alerted",
			from: ladder{phase: phaseConfigFault, faultAlerted: faultV.reason}, ev: evidence, at: 10 * m,
			in:   in(p, verdict{state: StateConfigFault, reason: "SIM PIN refused"}),
			want: ladder{phase: phaseConfigFault, faultAlerted: "SIM PIN refused"},
			acts: []string{"emit alert/error: configuration fault: SIM PIN refused; the recovery ladder stops"},
		},
		{
			name: "config fault: cleared to good: the alert may come again",
			from: ladder{phase: phaseConfigFault, faultAlerted: faultV.reason}, ev: evidence, at: 10 * m, in: in(p, healthy),
			want: ladder{goodSince: mt(10 * m)},
		},
		{
			name: "judging: the quota found exhausted: the climb ends, the recheck waits",
			from: func() ladder { l := climbing; l.quotaCheck = mt(68 * m); return l }(),
			ev:   evidence, at: 8 * m, in: in(p, quotaV),
			want: ladder{phase: phaseQuotaHold, rounds: 1, nextRound: mt(13 * m), since: mt(m), steps: 1, last: stepReattach,
				prob: probNetwork, reason: down.reason, quotaCheck: mt(68 * m), due: mt(68 * m), dueWhat: "recheck the quota"},
			acts: []string{"save"},
		},
		{
			name: "quota hold: at the recheck, the quota step",
			from: ladder{phase: phaseQuotaHold, quotaCheck: mt(68 * m), due: mt(68 * m), dueWhat: "recheck the quota"},
			ev:   evidence, at: 68 * m, in: in(p, quotaV),
			want: ladder{phase: phaseRecovering, taking: stepQuota, quotaCheck: mt(68 * m), due: mt(68 * m), dueWhat: "recheck the quota"},
			acts: []string{"take quota (the data quota is exhausted; no reset can refill it)"},
		},
		{
			name: "quota hold: the recheck's budget spent: wait for it, at least the recheck interval",
			from: ladder{phase: phaseQuotaHold, quotaCheck: mt(68 * m)},
			ev:   evidence, at: 68 * m, in: in(p, quotaV, "quota=budget:hourly budget (2) used"),
			want: ladder{phase: phaseQuotaHold, quotaCheck: mt(128 * m), due: mt(128 * m), dueWhat: "recheck the quota"},
		},
		{
			name: "recovering (quota): still exhausted: recheck on the slow timer",
			from: ladder{phase: phaseRecovering, taking: stepQuota, quotaCheck: mt(68 * m)},
			ev:   done(stepQuota, resultExhausted), at: 68 * m, in: in(p, quotaV),
			want: ladder{phase: phaseQuotaHold, quotaCheck: mt(128 * m), due: mt(128 * m), dueWhat: "recheck the quota"},
		},
		{
			name: "recovering (quota): the API unreachable: recheck on the slow timer",
			from: ladder{phase: phaseRecovering, taking: stepQuota, quotaCheck: mt(68 * m)},
			ev:   ladderEvent{kind: evStepDone, step: stepQuota, out: outcome{result: resultFailed, bscDown: "refused"}}, at: 68 * m, in: in(p, quotaV),
			want: ladder{phase: phaseQuotaHold, quotaCheck: mt(128 * m), due: mt(128 * m), dueWhat: "recheck the quota", bscDown: "refused"},
		},
		{
			name: "recovering (quota): throttled: recheck when the API said",
			from: ladder{phase: phaseRecovering, taking: stepQuota, quotaCheck: mt(68 * m)},
			ev:   ladderEvent{kind: evStepDone, step: stepQuota, out: outcome{result: resultThrottled, retryAt: mt(78 * m)}}, at: 68 * m, in: in(p, quotaV),
			want: ladder{phase: phaseQuotaHold, quotaCheck: mt(78 * m), due: mt(78 * m), dueWhat: "recheck the quota"},
		},
		{
			name: "recovering (quota): available again: the ladder may climb from the bottom",
			from: ladder{phase: phaseRecovering, taking: stepQuota, quotaCheck: mt(68 * m), due: mt(68 * m), dueWhat: "recheck the quota"},
			ev:   done(stepQuota, resultDone), at: 68 * m, in: in(p, down),
			want: ladder{phase: phaseIdle},
		},
		{
			name: "request: taken in any phase, which stays",
			from: climbing, ev: ladderEvent{kind: evRequest, step: stepReattach}, at: 5 * m, in: in(p, down),
			want: climbing,
			acts: []string{"take reattach (requested by the operator) requested"},
		},
		{
			name: "request: its prerequisites first",
			from: ladder{bscDown: "refused"}, ev: ladderEvent{kind: evRequest, step: stepBSCReset}, at: 5 * m, in: in(p, healthy, "bsc-reset=budget:daily budget (3) used"),
			want: ladder{bscDown: "refused"},
			acts: []string{"skip bsc-reset: the operator API is unreachable (refused) requested"},
		},
		{
			name: "request: then its budget",
			from: ladder{}, ev: ladderEvent{kind: evRequest, step: stepReattach}, at: 5 * m, in: in(p, healthy, "reattach=budget:hourly budget (3) used"),
			want: ladder{},
			acts: []string{"skip reattach: budget: hourly budget (3) used requested"},
		},
		{
			name: "request done: what it learnt stays, the climb goes on as it was",
			from: climbing,
			ev:   ladderEvent{kind: evStepDone, step: stepQuota, requested: true, out: outcome{result: resultExhausted}}, at: 5 * m, in: in(p, down),
			want: func() ladder { l := climbing; l.quotaCheck = mt(65 * m); return l }(),
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, acts := c.from.next(c.ev, mt(c.at), c.in)
			if got != c.want {
				t.Errorf("state\n got %+v\nwant %+v", got, c.want)
			}
			if d := describe(acts); !slices.Equal(d, c.acts) {
				t.Errorf("actions\n got %q\nwant %q", d, c.acts)
			}
			if i := slices.IndexFunc(acts, func(a ladderAction) bool { return a.kind == actTake }); i >= 0 && i != len(acts)-1 {
				t.Errorf("a take at %d of %d actions: it must be the last", i, len(acts))
			}
		})
	}
}

// The events next builds carry the attributes SCHEMA.md documents.
func TestLadderEventAttrs(t *testing.T) {
	p := testPolicy(t)
	attrsOf := func(acts []ladderAction) []event.Attrs {
		var out []event.Attrs
		for _, a := range acts {
			if a.kind == actEmit {
				out = append(out, a.attrs)
			}
		}
		return out
	}
	l, acts := ladder{}.next(ladderEvent{kind: evEvidence}, mt(2*m), in(p, down))
	want := event.Attrs{"step": "observe", "outcome": "watching", "reason": down.reason, "until": "2025-03-03T00:04:00Z"}
	if got := attrsOf(acts); len(got) != 1 || !maps.Equal(got[0], want) {
		t.Errorf("outage confirmed: %v, want %v", got, want)
	}
	// Straight to the top: every rung lacks something.
	var lacks []string
	for id := stepRedial; id < numSteps; id++ {
		lacks = append(lacks, stepNames[id]+"=not here")
	}
	l, acts = l.next(ladderEvent{kind: evEvidence}, mt(4*m), in(p, down, lacks...))
	got := attrsOf(acts)
	want = event.Attrs{"reason": down.reason, "rounds": 0, "parked_until": "2025-03-03T00:34:00Z"}
	if len(got) != 1 || !maps.Equal(got[0], want) || l.phase != phaseParked {
		t.Errorf("park: %v, want %v (phase %s)", got, want, l.phase)
	}
	_, acts = l.next(ladderEvent{kind: evEvidence}, mt(10*m), in(p, verdict{state: StateHealthy}))
	want = event.Attrs{"step": "observe", "outcome": "recovered", "steps": 0, "outage": "9m0s"}
	if got := attrsOf(acts); len(got) != 1 || !maps.Equal(got[0], want) {
		t.Errorf("recovered: %v, want %v", got, want)
	}
	_, acts = ladder{}.next(ladderEvent{kind: evEvidence}, mt(10*m), in(p, verdict{state: StateConfigFault, reason: "bad APN"}))
	want = event.Attrs{"reason": "bad APN", "outcome": "stopped"}
	if got := attrsOf(acts); len(got) != 1 || !maps.Equal(got[0], want) {
		t.Errorf("config fault: %v, want %v", got, want)
	}
}

// A climb played out over next alone, as Run would feed it: the order of
// the rungs, the waits between them, and the budgets binding over a day
// of outage without any step beyond them.
func TestLadderClimbsWithinBudgets(t *testing.T) {
	cfg := config.Default().Supervisor
	p := policyOf(cfg)
	h := history{}
	var l ladder
	var taken []string
	now := t0
	for now.Before(t0.Add(day)) {
		pi := in(p, down, "redial=no bearer")
		for id := stepRedial; id < numSteps; id++ {
			pi.budgets[id] = h.budget(id, stepConfig(cfg, id), now)
		}
		var acts []ladderAction
		l, acts = l.next(ladderEvent{kind: evEvidence}, now, pi)
		for len(acts) > 0 && acts[len(acts)-1].kind == actTake {
			id := acts[len(acts)-1].step
			h.add(id, now)
			taken = append(taken, fmt.Sprintf("%s@%s", stepNames[id], now.Sub(t0)))
			for id := stepRedial; id < numSteps; id++ {
				pi.budgets[id] = h.budget(id, stepConfig(cfg, id), now)
			}
			l, acts = l.next(ladderEvent{kind: evStepDone, step: id, out: outcome{result: resultDone}}, now, pi)
		}
		// Run sleeps until due or the next poll.
		next := now.Add(cfg.Poll.Duration)
		if l.due.After(now) && l.due.Before(next) {
			next = l.due
		}
		now = next
	}
	if len(taken) < 6 || !slices.Equal(taken[:6], []string{"reattach@4m0s", "cfun-reset@6m0s", "quota@8m0s", "bsc-reset@8m0s", "reboot@13m0s", "power-cycle@16m0s"}) {
		t.Errorf("the first climb: %v", taken)
	}
	var evs []event.Event
	for _, s := range taken {
		name, at, _ := strings.Cut(s, "@")
		d, _ := time.ParseDuration(at)
		evs = append(evs, event.Event{Time: t0.Add(d), Attrs: event.Attrs{"step": name}})
	}
	counts := checkBudgets(t, cfg, evs)
	if counts[StepPowerCycle] != cfg.Steps.PowerCycle.PerDay || counts[StepReattach] == 0 {
		t.Errorf("a day of outage: %v; want the power-cycle's daily budget used", counts)
	}
}
