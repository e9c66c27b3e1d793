package supervisor

import (
	"fmt"
	"time"

	"cellagent/agent/event"
	"cellagent/modem/clock"
)

// The recovery ladder as a state machine: ladder is its state, next its
// pure transition function. next reads no clock and does no I/O; Run
// (feed in ladder.go) feeds it events, performs the actions it returns in
// order, and feeds a step's outcome back as the next event.
//
//	idle ── a problem confirmed ──► observing ── due ──► recovering(X)
//	 ▲ ▲                                                     │
//	 │ │   done, with a wait ─────────► judging  ── due ──► recovering(next)
//	 │ │   throttled (429) ───────────► retrying ── due ──► recovering(X)
//	 │ │   failed, or done without a wait ──────────────► recovering(next)
//	 │ │   no rung left: alert ───────► parked   ── due ──► recovering(first)
//	 │ └── the quota exhausted: the climb ends
//	 └──── healthy, from observing, judging, retrying or parked:
//	       "recovered" ("healed during observe" without a step)
//
//	any ── verdict quota-exhausted ──► quota-hold ── due ──► recovering(quota)
//	       ──► quota-hold again, or idle once the quota is available
//	any ── verdict config-fault ──► config-fault: the climb ends, one alert
//	       per fault; healthy ──► idle
//
// An operator request (cmd/recover) takes or skips its step in any phase
// and leaves the phase as it was; only what the step learnt (the operator
// API unreachable, the quota exhausted) stays.

// phase is where the ladder is.
type phase int

const (
	// phaseIdle: no outage is being handled (the link is good, or its
	// trouble is not confirmed).
	phaseIdle phase = iota
	// phaseObserving: an outage is confirmed; the ladder waits until due
	// (the observe grace, the back-off between climbs) to climb.
	phaseObserving
	// phaseRecovering: a step is under way, for the climb or the
	// quota recheck; its outcome comes as evStepDone.
	phaseRecovering
	// phaseJudging: a step acted; its wait runs until due, then fresh
	// evidence judges it.
	phaseJudging
	// phaseRetrying: the operator API asked to wait until due.
	phaseRetrying
	// phaseParked: the climb reached the top without success; the
	// ladder keeps observing and climbs again at due.
	phaseParked
	// phaseQuotaHold: the data quota is exhausted; the quota step
	// rechecks it at due, on its slow timer.
	phaseQuotaHold
	// phaseConfigFault: the configuration is at fault; the ladder stays
	// still until the fault clears.
	phaseConfigFault
)

var phaseNames = [...]string{"idle", "observing", "recovering", "judging", "retrying", "parked", "quota-hold", "config-fault"}

func (p phase) String() string { return phaseNames[p] }

// ladder is the recovery state: a value, changed only by next.
type ladder struct {
	phase phase
	// taking is the step under way (phaseRecovering); climbing says
	// whether it belongs to a climb rather than to the quota recheck.
	taking   stepID
	climbing bool
	acted    bool      // a step was taken in this climb
	pos      stepID    // the last step taken in this climb
	due      time.Time // when the ladder acts next; zero: nothing planned
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
	// prob and reason are the verdict the climb under way works on.
	prob   problem
	reason string
	// bscDown says why the operator API is out for this climb.
	bscDown    string
	quotaCheck time.Time
	// faultAlerted is the configuration fault already alerted about.
	faultAlerted string
}

// active says whether an outage is being handled (a climb, its waits, or
// its park).
func (l ladder) active() bool {
	switch l.phase {
	case phaseObserving, phaseJudging, phaseRetrying, phaseParked:
		return true
	case phaseRecovering:
		return l.climbing
	}
	return false
}

// step is the outage's step to show: the one under way during a climb's
// step, which may take minutes (a reboot, a power-cycle), else the last
// taken.
func (l ladder) step() stepID {
	if l.phase == phaseRecovering && l.climbing {
		return l.taking
	}
	return l.pos
}

func (l ladder) parked(now time.Time) bool { return now.Before(l.parkedUntil) }

// ladderEvent is what happened: the evidence as it stands (after a poll,
// a URC, a request or the due time woke Run), a step's outcome, or an
// operator's request.
type ladderEvent struct {
	kind eventKind
	// evStepDone, evRequest: the step.
	step stepID
	// evStepDone: what it did, and whether an operator asked for it.
	out       outcome
	requested bool
}

type eventKind int

const (
	evEvidence eventKind = iota
	evStepDone
	evRequest
)

// policyConfig is the configuration next applies.
type policyConfig struct {
	observe, park, backoffMin, backoffMax, quotaRecheck time.Duration
	waits                                               [numSteps]time.Duration
}

func policyOf(c Config) policyConfig {
	p := policyConfig{
		observe: c.Observe.Duration, park: c.Park.Duration,
		backoffMin: c.BackoffMin.Duration, backoffMax: c.BackoffMax.Duration, quotaRecheck: c.QuotaRecheck.Duration,
	}
	for id := stepRedial; id < numSteps; id++ {
		p.waits[id] = stepConfig(c, id).Wait.Duration
	}
	return p
}

// policyInputs is what next needs but must not find out itself, read by
// the caller at the event's time.
type policyInputs struct {
	cfg     policyConfig
	healthy bool    // nothing is wrong with the link (tracker.ok)
	v       verdict // the health verdict
	// needs says what each step lacks to be taken ("" nothing): an AT
	// session, the operator API, power lines, a bearer of the agent's.
	needs [numSteps]string
	// budgets is what each step may still do.
	budgets [numSteps]budget
}

// ladderAction is what the loop does for next, in order.
type ladderAction struct {
	kind actionKind
	// actTake, actSkip: the step; actTake: for what reason; both: at an
	// operator's request.
	step      stepID
	reason    string
	requested bool
	// actSkip: why.
	why string
	// actEmit: the event.
	typ, level, msg string
	attrs           event.Attrs
}

type actionKind int

const (
	actTake actionKind = iota // run the step, feed its outcome back: always last
	actSkip                   // record and report a step not taken
	actEmit                   // send an event
	actSave                   // persist the history with rounds, next round and park
)

func (k actionKind) String() string { return [...]string{"take", "skip", "emit", "save"}[k] }

func emitAction(typ, level, msg string, attrs event.Attrs) ladderAction {
	return ladderAction{kind: actEmit, typ: typ, level: level, msg: msg, attrs: attrs}
}

// next is the transition function: the state after ev at now, and what
// to do about it.
func (l ladder) next(ev ladderEvent, now time.Time, in policyInputs) (ladder, []ladderAction) {
	var acts []ladderAction
	switch ev.kind {
	case evRequest:
		acts = l.request(ev.step, in)
	case evStepDone:
		acts = l.stepDone(ev, now, in)
	default:
		acts = l.evidence(now, in)
	}
	return l, acts
}

// evidence moves the ladder on after an observation or a wait.
func (l *ladder) evidence(now time.Time, in policyInputs) []ladderAction {
	v := in.v
	switch {
	case in.healthy:
		l.faultAlerted = ""
		return l.recovered(now, in.cfg)
	case v.state == StateQuota:
		return l.watchQuota(now, in)
	case v.state == StateConfigFault:
		return l.configFault(now, v.reason, in.cfg)
	case v.problem == probNone:
		// Degraded, or not yet confirmed: nothing the evidence calls for.
		// An outage under way keeps its place on the ladder.
		return nil
	}
	var acts []ladderAction
	if !l.active() {
		start := latest(v.since.Add(in.cfg.observe), l.nextRound, l.parkedUntil)
		l.phase, l.acted, l.pos, l.bscDown = phaseObserving, false, stepObserve, ""
		l.goodSince, l.since, l.steps, l.last = time.Time{}, v.since, 0, stepObserve
		l.due, l.dueWhat = start, "climb the ladder"
		acts = append(acts, emitAction(event.Recovery, "warn", fmt.Sprintf("%s: outage confirmed (%s); next step not before %s",
			StepObserve, v.reason, start.UTC().Format(time.RFC3339)),
			event.Attrs{"step": StepObserve, "outcome": "watching", "reason": v.reason, "until": start.UTC().Format(time.RFC3339)}))
	}
	if now.Before(l.due) {
		return acts
	}
	l.prob, l.reason = v.problem, v.reason
	return append(acts, l.climb(now, in)...)
}

// needs says what step id lacks to be taken now; "" nothing.
func (l *ladder) needs(id stepID, in policyInputs) string {
	// The quota step of this climb found the operator API unreachable:
	// on a gateway whose only uplink is the cellular link that is the
	// usual case, and another call would only wait for the same
	// time-outs.
	if in.needs[id] == "" && id == stepBSCReset && l.bscDown != "" {
		return "the operator API is unreachable (" + l.bscDown + ")"
	}
	return in.needs[id]
}

// blocked says why step id cannot be taken now: what it needs, else its
// budget; "" if it can.
func (l *ladder) blocked(id stepID, in policyInputs) string {
	return blockedBy(l.needs(id, in), in.budgets[id])
}

// climb takes the next step the evidence calls for, as nextRung decides,
// or parks at the top.
func (l *ladder) climb(now time.Time, in policyInputs) []ladderAction {
	var acts []ladderAction
	skips, id := nextRung(l.pos, l.prob, func(id stepID) string { return l.blocked(id, in) })
	for _, sk := range skips {
		acts = append(acts, ladderAction{kind: actSkip, step: sk.id, why: sk.why})
		l.pos = sk.id
	}
	if id == numSteps {
		return append(acts, l.park(now, in.cfg)...)
	}
	if !l.acted {
		l.acted, l.rounds, l.parkedUntil = true, l.rounds+1, time.Time{}
	}
	l.phase, l.taking, l.climbing = phaseRecovering, id, true
	return append(acts, ladderAction{kind: actTake, step: id, reason: l.reason})
}

// stepDone takes in what a step learnt, and moves the climb or the quota
// recheck it belongs to on.
func (l *ladder) stepDone(ev ladderEvent, now time.Time, in policyInputs) []ladderAction {
	out, id := ev.out, ev.step
	if out.bscDown != "" {
		l.bscDown = out.bscDown
	}
	if out.result == resultExhausted {
		l.quotaCheck = now.Add(in.cfg.quotaRecheck)
	}
	if ev.requested {
		// An operator's request: the phase is as it was.
		return nil
	}
	climbing := l.climbing
	l.taking, l.climbing = stepObserve, false
	if !climbing {
		return l.quotaChecked(out, now, in.cfg)
	}
	if out.result != resultThrottled {
		l.steps, l.last = l.steps+1, id
	}
	wait := in.cfg.waits[id]
	switch afterStep(out.result, wait) {
	case moveRetry:
		l.phase, l.due, l.dueWhat = phaseRetrying, out.retryAt, "retry "+stepNames[id]+" (operator API asked to wait)"
		return nil
	case moveEnd:
		return l.endClimb(now, in.cfg)
	case moveJudge:
		l.pos = id
		l.phase, l.due, l.dueWhat = phaseJudging, now.Add(wait), "judge "+stepNames[id]+", then the next step"
		return nil
	}
	l.pos = id
	return l.climb(now, in)
}

// endClimb closes a climb and spaces the next one.
func (l *ladder) endClimb(now time.Time, cfg policyConfig) []ladderAction {
	if l.acted {
		l.nextRound = now.Add(clock.Backoff(cfg.backoffMin, cfg.backoffMax, l.rounds))
	}
	l.phase, l.acted, l.pos, l.due, l.dueWhat = phaseIdle, false, stepObserve, time.Time{}, ""
	return []ladderAction{{kind: actSave}}
}

// park ends a climb that reached the top without success.
func (l *ladder) park(now time.Time, cfg policyConfig) []ladderAction {
	l.nextRound = now.Add(clock.Backoff(cfg.backoffMin, cfg.backoffMax, l.rounds))
	until := latest(now.Add(cfg.park), l.nextRound)
	l.phase, l.parkedUntil, l.pos, l.acted, l.bscDown = phaseParked, until, stepObserve, false, ""
	l.due, l.dueWhat = until, "climb again after the park"
	attrs := event.Attrs{"reason": l.reason, "rounds": l.rounds, "parked_until": until.UTC().Format(time.RFC3339)}
	return []ladderAction{{kind: actSave}, emitAction(EventAlert, "error", fmt.Sprintf("recovery ladder reached the top without success (%s); parked until %s, still observing",
		l.reason, until.UTC().Format(time.RFC3339)), attrs)}
}

// recovered closes the outage once the link is good again, and forgets
// the climbs once it has stayed good for backoff_max.
func (l *ladder) recovered(now time.Time, cfg policyConfig) []ladderAction {
	if !l.active() {
		l.phase = phaseIdle
		switch {
		case l.goodSince.IsZero():
			l.goodSince = now
		case l.rounds > 0 && now.Sub(l.goodSince) >= cfg.backoffMax:
			l.rounds = 0
			return []ladderAction{{kind: actSave}}
		}
		return nil
	}
	steps, last, outage := l.steps, l.last, round(now.Sub(l.since))
	l.parkedUntil, l.goodSince = time.Time{}, now
	acts := l.endClimb(now, cfg)
	attrs := event.Attrs{"step": stepNames[last], "outcome": "recovered", "steps": steps, "outage": outage.String()}
	msg := fmt.Sprintf("link recovered after %s (%d steps), outage %s", stepNames[last], steps, outage)
	if steps == 0 {
		msg = fmt.Sprintf("link healed during observe, without action, outage %s", outage)
	}
	return append(acts, emitAction(event.Recovery, "info", msg, attrs))
}

// configFault holds the ladder still while the configuration is at
// fault: the climb under way ends, and one alert says what to fix. The
// alert is raised again only after the fault has cleared and come back.
func (l *ladder) configFault(now time.Time, reason string, cfg policyConfig) []ladderAction {
	var acts []ladderAction
	if l.active() {
		acts = l.endClimb(now, cfg)
	}
	l.phase, l.due, l.dueWhat = phaseConfigFault, time.Time{}, ""
	if l.faultAlerted == reason {
		return acts
	}
	l.faultAlerted = reason
	return append(acts, emitAction(EventAlert, "error", "configuration fault: "+reason+"; the recovery ladder stops",
		event.Attrs{"reason": reason, "outcome": "stopped"}))
}

// watchQuota rechecks an exhausted quota on its slow timer.
func (l *ladder) watchQuota(now time.Time, in policyInputs) []ladderAction {
	var acts []ladderAction
	if l.active() {
		acts = l.endClimb(now, in.cfg)
	}
	l.phase = phaseQuotaHold
	if now.Before(l.quotaCheck) {
		l.due, l.dueWhat = l.quotaCheck, "recheck the quota"
		return acts
	}
	if b := in.budgets[stepQuota]; b.why != "" {
		l.quotaCheck = latest(b.next, now.Add(in.cfg.quotaRecheck))
		l.due, l.dueWhat = l.quotaCheck, "recheck the quota"
		return acts
	}
	l.phase, l.taking, l.climbing = phaseRecovering, stepQuota, false
	return append(acts, ladderAction{kind: actTake, step: stepQuota, reason: in.v.reason})
}

// quotaChecked plans the next recheck after the quota step ran.
func (l *ladder) quotaChecked(out outcome, now time.Time, cfg policyConfig) []ladderAction {
	l.phase = phaseQuotaHold
	switch out.result {
	case resultThrottled:
		l.quotaCheck = out.retryAt
	case resultDone:
		// Available again: the ladder may climb from the bottom.
		l.phase, l.quotaCheck, l.due, l.dueWhat = phaseIdle, time.Time{}, time.Time{}, ""
		return nil
	default:
		l.quotaCheck = now.Add(cfg.quotaRecheck)
	}
	l.due, l.dueWhat = l.quotaCheck, "recheck the quota"
	return nil
}

// request takes a step cmd/recover asked for, if its prerequisites and
// budget allow.
func (l *ladder) request(id stepID, in policyInputs) []ladderAction {
	skip := func(why string) []ladderAction {
		return []ladderAction{{kind: actSkip, step: id, why: why, requested: true}}
	}
	if why := l.needs(id, in); why != "" {
		return skip(why)
	}
	if b := in.budgets[id]; b.why != "" {
		return skip("budget: " + b.why)
	}
	return []ladderAction{{kind: actTake, step: id, reason: "requested by the operator", requested: true}}
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
