package supervisor

import (
	"fmt"
	"testing"
	"time"
)

// TestNextRung: the climb's order, what each problem skips silently (steps
// that do not treat it) and what it skips with a reason (blocked steps),
// without a modem, a clock or a goroutine.
func TestNextRung(t *testing.T) {
	none := func(stepID) string { return "" }
	blocking := func(why map[stepID]string) func(stepID) string {
		return func(id stepID) string { return why[id] }
	}
	for _, c := range []struct {
		name    string
		pos     stepID
		p       problem
		blocked func(stepID) string
		skips   string
		take    stepID
	}{
		{"network: the bottom rung first", stepObserve, probNetwork, none, "[]", stepReattach},
		{"network: after reattach", stepReattach, probNetwork, none, "[]", stepCFUNReset},
		{"network: quota after cfun-reset", stepCFUNReset, probNetwork, none, "[]", stepQuota},
		{"network: the top", stepReboot, probNetwork, none, "[]", stepPowerCycle},
		{"network: nothing above the top", stepPowerCycle, probNetwork, none, "[]", numSteps},
		{"modem: only reboot and power-cycle treat it", stepObserve, probModem, none, "[]", stepReboot},
		{"modem: after reboot", stepReboot, probModem, none, "[]", stepPowerCycle},
		{"no AT: skip what needs it", stepObserve, probNetwork,
			blocking(map[stepID]string{stepReattach: "no AT", stepCFUNReset: "no AT"}),
			"[reattach: no AT cfun-reset: no AT]", stepQuota},
		{"no BSC, no power: everything above cfun-reset blocked", stepCFUNReset, probNetwork,
			blocking(map[stepID]string{stepQuota: "no bsc", stepBSCReset: "no bsc", stepReboot: "budget", stepPowerCycle: "no power"}),
			"[quota: no bsc bsc-reset: no bsc reboot: budget power-cycle: no power]", numSteps},
		{"modem: blocked rungs that do not treat it are not reported", stepObserve, probModem,
			blocking(map[stepID]string{stepReattach: "x", stepReboot: "budget"}),
			"[reboot: budget]", stepPowerCycle},
	} {
		skips, take := nextRung(c.pos, c.p, c.blocked)
		var names []string
		for _, s := range skips {
			names = append(names, stepNames[s.id]+": "+s.why)
		}
		got := fmt.Sprint(names)
		if names == nil {
			got = "[]"
		}
		if got != c.skips || take != c.take {
			t.Errorf("%s: skips %s take %d; want %s and %d", c.name, got, take, c.skips, c.take)
		}
	}
}

func TestAfterStep(t *testing.T) {
	for _, c := range []struct {
		result string
		wait   time.Duration
		want   afterStepMove
	}{
		{resultDone, time.Minute, moveJudge},
		{resultDone, 0, moveNext},
		{resultFailed, time.Minute, moveNext},
		{resultSkipped, time.Minute, moveNext},
		{resultThrottled, time.Minute, moveRetry},
		{resultExhausted, time.Minute, moveEnd},
	} {
		if got := afterStep(c.result, c.wait); got != c.want {
			t.Errorf("afterStep(%s, %s) = %d, want %d", c.result, c.wait, got, c.want)
		}
	}
}

func TestBlockedBy(t *testing.T) {
	next := time.Date(2025, 3, 1, 13, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		needs string
		b     budget
		want  string
	}{
		{"", budget{}, ""},
		{"no AT session", budget{why: "hourly budget (2) used", next: next}, "no AT session"},
		{"", budget{why: "hourly budget (2) used", next: next}, "budget: hourly budget (2) used; next allowed at 2025-03-01T13:00:00Z"},
		{"", budget{why: "disabled by its configuration (no budget)"}, "budget: disabled by its configuration (no budget)"},
	} {
		if got := blockedBy(c.needs, c.b); got != c.want {
			t.Errorf("blockedBy(%q, %+v) = %q, want %q", c.needs, c.b, got, c.want)
		}
	}
}
