package agent

import (
	"time"

	"cellagent/agent/atsession"
	"cellagent/agent/supervisor"
)

// Life is the modem's life in one view: the session's phase while there
// is no session, the recovery ladder's once there is one or while it
// acts.
type Life struct {
	// Phase is one of the Life* phases.
	Phase string `json:"phase"`
	// Step is the ladder step being taken or last taken in this outage
	// (recovering, parked).
	Step  string    `json:"step,omitempty"`
	Since time.Time `json:"since,omitzero"`
}

// The phases of Life beside the session's own (closed, opening, booting,
// initialising, up, retrying, settling), which it takes over while the
// ladder is not acting.
const (
	// LifeObserving: the session is up and the supervisor sees a
	// problem, but the ladder has taken no step yet (its grace).
	LifeObserving = "observing"
	// LifeRecovering: the ladder took a step in this outage (Step).
	LifeRecovering = "recovering"
	// LifeParked: the ladder climbed to its top without a cure and waits.
	LifeParked = "parked"
	// LifeQuotaHold: the operator says the SIM's quota is used up; the
	// ladder waits for it rather than resetting a modem that works.
	LifeQuotaHold = "quota-hold"
	// LifeConfigFault: the network refuses the configuration (APN, PIN);
	// no reset can cure it.
	LifeConfigFault = "config-fault"
)

// life combines the session's phase with the supervisor's view (nil
// before the supervisor exists). What the ladder does wins: during a
// power-cycle the session is booting, but the modem's life is the
// recovery step. Without an outage the session's phase is the answer.
func life(s atsession.Snapshot, sup *supervisor.Snapshot) Life {
	if sup != nil {
		stepTaken := sup.Step != "" && sup.Step != supervisor.StepObserve
		switch {
		case sup.Parked:
			return Life{Phase: LifeParked, Step: sup.Step, Since: sup.Since}
		case sup.State == supervisor.StateConfigFault:
			return Life{Phase: LifeConfigFault, Since: sup.Since}
		case sup.State == supervisor.StateQuota:
			return Life{Phase: LifeQuotaHold, Since: sup.Since}
		case stepTaken:
			return Life{Phase: LifeRecovering, Step: sup.Step, Since: stepSince(sup)}
		case s.Phase == atsession.Up && sup.Step == supervisor.StepObserve:
			return Life{Phase: LifeObserving, Since: sup.Since}
		}
	}
	return Life{Phase: string(s.Phase), Since: s.Since}
}

// stepSince is when the step in progress was taken, else when the
// supervisor's state began.
func stepSince(sup *supervisor.Snapshot) time.Time {
	for i := len(sup.LastActions) - 1; i >= 0; i-- {
		if a := sup.LastActions[i]; a.Step == sup.Step {
			return a.At
		}
	}
	return sup.Since
}
