package supervisor

import (
	"context"
	"maps"
	"strings"
	"time"

	"cellagent/agent/config"
	"cellagent/agent/event"
)

type stepID int

const (
	stepObserve stepID = iota
	stepRedial
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
	StepRedial     = "redial"
	StepReattach   = "reattach"
	StepCFUNReset  = "cfun-reset"
	StepQuota      = "quota"
	StepBSCReset   = "bsc-reset"
	StepReboot     = "reboot"
	StepPowerCycle = "power-cycle"
)

var stepNames = [numSteps]string{StepObserve, StepRedial, StepReattach, StepCFUNReset, StepQuota, StepBSCReset, StepReboot, StepPowerCycle}

func stepByName(name string) (stepID, bool) {
	for i, n := range stepNames {
		if n == name {
			return stepID(i), true
		}
	}
	return 0, false
}

func actionNames() string { return strings.Join(stepNames[stepRedial:], ", ") }

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
	stepRedial:     {network, (*Supervisor).needBearer, (*Supervisor).redial},
	stepReattach:   {network, (*Supervisor).needAT, (*Supervisor).reattach},
	stepCFUNReset:  {network, (*Supervisor).needAT, (*Supervisor).cfunReset},
	stepQuota:      {network, (*Supervisor).needBSC, (*Supervisor).checkQuota},
	stepBSCReset:   {network, (*Supervisor).needBSC, (*Supervisor).bscReset},
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
	// bscDown says why the operator API is unreachable, when the step
	// found it so.
	bscDown string
}

// tick feeds the machine the evidence as it stands, after a poll or a
// wait.
func (s *Supervisor) tick(ctx context.Context) { s.feed(ctx, ladderEvent{kind: evEvidence}) }

// feed gives the machine ev and performs what it decides, in order; a
// step's outcome goes back in as the next event.
func (s *Supervisor) feed(ctx context.Context, ev ladderEvent) {
	for {
		now := s.clock.Now()
		var acts []ladderAction
		s.lad, acts = s.lad.next(ev, now, s.inputs(now))
		s.publish()
		more := false
		for _, a := range acts {
			switch a.kind {
			case actSave:
				s.save()
			case actEmit:
				s.emit(a.typ, a.level, a.msg, a.attrs)
			case actSkip:
				s.skip(a.step, a.why, a.requested)
			case actTake:
				// A stopping agent starts no step: it would be charged
				// to the budget and, with AT steps, might still reach
				// the modem, since a command races its ended context.
				if ctx.Err() != nil {
					return
				}
				out := s.take(ctx, a.step, a.reason, a.requested)
				ev, more = ladderEvent{kind: evStepDone, step: a.step, requested: a.requested, out: out}, true
			}
		}
		// A step cut short by the stop failed for no reason of the
		// link's: its outcome would move the climb on, to the park.
		if !more || ctx.Err() != nil {
			return
		}
	}
}

// inputs reads what the machine needs at now.
func (s *Supervisor) inputs(now time.Time) policyInputs {
	in := policyInputs{cfg: s.policy, healthy: s.health.ok(), v: s.v}
	for id := stepRedial; id < numSteps; id++ {
		in.needs[id] = ladderSteps[id].needs(s)
		in.budgets[id] = s.hist.budget(id, stepConfig(s.cfg, id), now)
	}
	return in
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
		s.feed(ctx, ladderEvent{kind: evRequest, step: id})
	}
}

// unavailable says why a step can never be taken with these parts.
func (s *Supervisor) unavailable(id stepID) string {
	switch id {
	case stepQuota, stepBSCReset:
		return s.needBSC()
	case stepPowerCycle:
		return s.needPower()
	case stepRedial:
		return s.needBearer()
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
