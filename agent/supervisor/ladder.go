package supervisor

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	"cellagent/agent/config"
	"cellagent/agent/event"
	"cellagent/modem/clock"
)

type stepID int

const (
	stepObserve stepID = iota
	stepReattach
	stepCFUNReset
	stepQuota
	stepBSCReset
	stepReboot
	stepPowerCycle
	numSteps
)

// Step names, as cmd/recover and the [supervisor.steps] tables spell them.
const (
	StepObserve    = "observe"
	StepReattach   = "reattach"
	StepCFUNReset  = "cfun-reset"
	StepQuota      = "quota"
	StepBSCReset   = "bsc-reset"
	StepReboot     = "reboot"
	StepPowerCycle = "power-cycle"
)

var stepNames = [numSteps]string{StepObserve, StepReattach, StepCFUNReset, StepQuota, StepBSCReset, StepReboot, StepPowerCycle}

func stepByName(name string) (stepID, bool) {
	for i, n := range stepNames {
		if n == name {
			return stepID(i), true
		}
	}
	return 0, false
}

func actionNames() string { return strings.Join(stepNames[stepReattach:], ", ") }

func stepConfig(c Config, id stepID) config.StepConfig {
	for _, st := range c.Steps.Named() {
		if st.Name == stepNames[id] {
			return st.StepConfig
		}
	}
	return config.StepConfig{}
}

// stepSpec is one rung: the problems it can address, what it needs, and
// what it does. The ladder is this table; its order is the climb's.
type stepSpec struct {
	treats map[problem]bool
	needs  func(*Supervisor) string // why it cannot be taken now; "" if it can
	run    func(*Supervisor, context.Context) outcome
}

var network, anyProblem = map[problem]bool{probNetwork: true}, map[problem]bool{probNetwork: true, probModem: true}

var ladderSteps = [numSteps]stepSpec{
	stepReattach:   {network, (*Supervisor).needAT, (*Supervisor).reattach},
	stepCFUNReset:  {network, (*Supervisor).needAT, (*Supervisor).cfunReset},
	stepQuota:      {network, (*Supervisor).needBSC, (*Supervisor).checkQuota},
	stepBSCReset:   {network, (*Supervisor).needBSCReachable, (*Supervisor).bscReset},
	stepReboot:     {anyProblem, (*Supervisor).needAT, (*Supervisor).reboot},
	stepPowerCycle: {anyProblem, (*Supervisor).needPower, (*Supervisor).powerCycle},
}

// Results of a step.
const (
	resultDone      = "done"            // it acted: give it its wait
	resultFailed    = "failed"          // it could not act: go on at once
	resultSkipped   = "skipped"         // not taken: budget or prerequisites
	resultThrottled = "throttled"       // the operator API said 429: retry later, no budget spent
	resultExhausted = "quota-exhausted" // the quota step found no data left: stop climbing
)

type outcome struct {
	result  string
	detail  string
	attrs   event.Attrs
	retryAt time.Time
}

// ladder is the recovery state of the current outage.
type ladder struct {
	active bool      // an outage is being handled
	acted  bool      // a step was taken in this climb
	pos    stepID    // the last step taken in this climb
	due    time.Time // when the ladder acts next; zero: nothing planned
	// dueWhat says what happens at due, for the status file.
	dueWhat     string
	rounds      int // climbs since the link last stayed good for backoff_max
	nextRound   time.Time
	parkedUntil time.Time
	goodSince   time.Time
	// since is when the evidence of the current outage began; steps and
	// last count and name what this outage has taken so far.
	since time.Time
	steps int
	last  stepID
	// bscDown says why the operator API is out for this climb.
	bscDown    string
	quotaCheck time.Time
}

func (l *ladder) parked(now time.Time) bool { return now.Before(l.parkedUntil) }

// backoff is the pause before climb n+1: backoff_min doubling per climb,
// capped at backoff_max.
func (s *Supervisor) backoff(n int) time.Duration {
	return clock.Backoff(s.cfg.BackoffMin.Duration, s.cfg.BackoffMax.Duration, n)
}

func (s *Supervisor) plan(at time.Time, what string) {
	s.lad.due, s.lad.dueWhat = at, what
	s.publish()
}

// tick moves the ladder on after an observation or a wait.
func (s *Supervisor) tick(ctx context.Context) {
	now := s.clock.Now()
	v := s.v
	switch {
	case s.health.ok():
		s.recovered(now)
		return
	case v.state == StateQuota:
		s.watchQuota(ctx, now)
		return
	case v.problem == probNone:
		// Degraded, or not yet confirmed: nothing the evidence calls for.
		// An outage under way keeps its place on the ladder.
		return
	}
	l := &s.lad
	if !l.active {
		start := latest(v.since.Add(s.cfg.Observe.Duration), l.nextRound, l.parkedUntil)
		l.active, l.acted, l.pos, l.bscDown = true, false, stepObserve, ""
		l.goodSince, l.since, l.steps, l.last = time.Time{}, v.since, 0, stepObserve
		s.publish()
		s.plan(start, "climb the ladder")
		s.emit(event.Recovery, "warn", fmt.Sprintf("%s: outage confirmed (%s); next step not before %s",
			StepObserve, v.reason, start.UTC().Format(time.RFC3339)),
			event.Attrs{"step": StepObserve, "outcome": "watching", "reason": v.reason, "until": start.UTC().Format(time.RFC3339)})
	}
	if now.Before(l.due) {
		return
	}
	s.climb(ctx, v)
}

func latest(ts ...time.Time) time.Time {
	var m time.Time
	for _, t := range ts {
		if t.After(m) {
			m = t
		}
	}
	return m
}

// climb takes the next steps the evidence calls for, as nextRung and
// afterStep decide.
func (s *Supervisor) climb(ctx context.Context, v verdict) {
	l := &s.lad
	blocked := func(id stepID) string {
		return blockedBy(ladderSteps[id].needs(s), s.hist.budget(id, stepConfig(s.cfg, id), s.clock.Now()))
	}
	for {
		skips, id := nextRung(l.pos, v.problem, blocked)
		for _, sk := range skips {
			s.skip(sk.id, sk.why, false)
			s.setPos(sk.id)
		}
		if id == numSteps {
			break
		}
		if !l.acted {
			l.acted, l.rounds, l.parkedUntil = true, l.rounds+1, time.Time{}
			s.publish()
		}
		out := s.take(ctx, id, v.reason, false)
		now := s.clock.Now()
		if out.result != resultThrottled {
			l.steps, l.last = l.steps+1, id
			s.publish()
		}
		wait := stepConfig(s.cfg, id).Wait.Duration
		switch afterStep(out.result, wait) {
		case moveRetry:
			s.plan(out.retryAt, "retry "+stepNames[id]+" (operator API asked to wait)")
			return
		case moveEnd:
			s.endClimb(now)
			return
		case moveJudge:
			s.setPos(id)
			s.plan(now.Add(wait), "judge "+stepNames[id]+", then the next step")
			return
		}
		s.setPos(id)
	}
	s.park(v)
}

func (s *Supervisor) setPos(id stepID) {
	s.lad.pos = id
	s.publish()
}

// endClimb closes a climb and spaces the next one.
func (s *Supervisor) endClimb(now time.Time) {
	l := &s.lad
	if l.acted {
		l.nextRound = now.Add(s.backoff(l.rounds))
	}
	l.active, l.acted, l.pos, l.due, l.dueWhat = false, false, stepObserve, time.Time{}, ""
	s.publish()
	s.save()
}

// park ends a climb that reached the top without success.
func (s *Supervisor) park(v verdict) {
	now := s.clock.Now()
	l := &s.lad
	l.nextRound = now.Add(s.backoff(l.rounds))
	until := latest(now.Add(s.cfg.Park.Duration), l.nextRound)
	l.parkedUntil, l.pos, l.acted, l.bscDown = until, stepObserve, false, ""
	l.due, l.dueWhat = until, "climb again after the park"
	rounds := l.rounds
	s.publish()
	s.save()
	attrs := event.Attrs{"reason": v.reason, "rounds": rounds, "parked_until": until.UTC().Format(time.RFC3339)}
	s.emit(EventAlert, "error", fmt.Sprintf("recovery ladder reached the top without success (%s); parked until %s, still observing",
		v.reason, until.UTC().Format(time.RFC3339)), attrs)
}

// recovered closes the outage once the link is good again, and forgets
// the climbs once it has stayed good for backoff_max.
func (s *Supervisor) recovered(now time.Time) {
	l := &s.lad
	if !l.active {
		switch {
		case l.goodSince.IsZero():
			l.goodSince = now
			s.publish()
		case l.rounds > 0 && now.Sub(l.goodSince) >= s.cfg.BackoffMax.Duration:
			l.rounds = 0
			s.publish()
			s.save()
		}
		return
	}
	steps, last, outage := l.steps, l.last, round(now.Sub(l.since))
	l.parkedUntil, l.goodSince = time.Time{}, now
	s.publish()
	s.endClimb(now)
	attrs := event.Attrs{"step": stepNames[last], "outcome": "recovered", "steps": steps, "outage": outage.String()}
	msg := fmt.Sprintf("link recovered after %s (%d steps), outage %s", stepNames[last], steps, outage)
	if steps == 0 {
		msg = fmt.Sprintf("link healed during observe, without action, outage %s", outage)
	}
	s.emit(event.Recovery, "info", msg, attrs)
}

// watchQuota rechecks an exhausted quota on its slow timer.
func (s *Supervisor) watchQuota(ctx context.Context, now time.Time) {
	l := &s.lad
	if l.active {
		s.endClimb(now)
	}
	if now.Before(l.quotaCheck) {
		s.plan(l.quotaCheck, "recheck the quota")
		return
	}
	b := s.hist.budget(stepQuota, stepConfig(s.cfg, stepQuota), now)
	if b.why != "" {
		l.quotaCheck = latest(b.next, now.Add(s.cfg.QuotaRecheck.Duration))
		s.plan(l.quotaCheck, "recheck the quota")
		return
	}
	out := s.take(ctx, stepQuota, s.v.reason, false)
	switch out.result {
	case resultThrottled:
		l.quotaCheck = out.retryAt
	case resultDone:
		// Available again: the ladder may climb from the bottom.
		l.quotaCheck = time.Time{}
		s.plan(time.Time{}, "")
		return
	default:
		l.quotaCheck = s.clock.Now().Add(s.cfg.QuotaRecheck.Duration)
	}
	s.plan(l.quotaCheck, "recheck the quota")
}

// serveRequests runs the steps cmd/recover asked for.
func (s *Supervisor) serveRequests(ctx context.Context) {
	for {
		s.reqMu.Lock()
		if len(s.requests) == 0 {
			s.reqMu.Unlock()
			return
		}
		id := s.requests[0]
		s.requests = s.requests[1:]
		s.reqMu.Unlock()
		b := s.hist.budget(id, stepConfig(s.cfg, id), s.clock.Now())
		if why := ladderSteps[id].needs(s); why != "" {
			s.skip(id, why, true)
			continue
		}
		if b.why != "" {
			s.skip(id, "budget: "+b.why, true)
			continue
		}
		s.take(ctx, id, "requested by the operator", true)
	}
}

// unavailable says why a step can never be taken with these parts.
func (s *Supervisor) unavailable(id stepID) string {
	switch id {
	case stepQuota, stepBSCReset:
		return s.needBSC()
	case stepPowerCycle:
		return s.needPower()
	}
	return ""
}

func (s *Supervisor) skip(id stepID, why string, requested bool) {
	s.record(Action{Step: stepNames[id], At: s.clock.Now(), Outcome: resultSkipped, Detail: why, Requested: requested})
	attrs := event.Attrs{"step": stepNames[id], "outcome": resultSkipped, "why": why}
	if requested {
		attrs["requested"] = true
	}
	s.emit(event.Recovery, "warn", stepNames[id]+": skipped: "+why, attrs)
}

func (s *Supervisor) record(a Action) {
	s.actions = append(s.actions, a)
	if len(s.actions) > lastActions {
		s.actions = s.actions[len(s.actions)-lastActions:]
	}
	s.publish()
}

// take runs a step. It is recorded and saved before it runs, so that a
// crash during the step still counts against the budget.
func (s *Supervisor) take(ctx context.Context, id stepID, reason string, requested bool) outcome {
	name, cfg := stepNames[id], stepConfig(s.cfg, id)
	at := s.clock.Now()
	s.hist.add(id, at)
	s.hist.prune(at)
	attempt := s.hist[id].Since(at.Add(-day))
	s.publish()
	s.save()
	s.log.Info("supervisor: taking a recovery step", "step", name, "attempt_today", attempt, "reason", reason)

	out := ladderSteps[id].run(s, ctx)

	now := s.clock.Now()
	if out.result == resultThrottled {
		s.hist.remove(id, at)
		s.publish()
		s.save()
	}
	b := s.hist.budget(id, cfg, now)
	s.record(Action{Step: name, At: at, Outcome: out.result, Detail: out.detail, Requested: requested})
	attrs := event.Attrs{
		"step": name, "outcome": out.result, "attempt": attempt, "reason": reason,
		"budget_hour_left": b.hourLeft, "budget_day_left": b.dayLeft,
	}
	if requested {
		attrs["requested"] = true
	}
	maps.Copy(attrs, out.attrs)
	if d := now.Sub(at); d > 0 {
		attrs["took"] = round(d).String()
	}
	level := map[string]string{resultDone: "info", resultFailed: "warn", resultThrottled: "warn", resultExhausted: "error"}[out.result]
	if out.result == resultDone && id >= stepReboot {
		level = "warn"
	}
	msg := name + ": " + out.result
	if out.detail != "" {
		msg += ": " + out.detail
	}
	s.emitAt(at, event.Recovery, level, msg, attrs)
	return out
}
