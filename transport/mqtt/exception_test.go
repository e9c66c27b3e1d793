package mqtt

import (
	"testing"
	"time"
)

func TestShouldReport(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	base := Telemetry{
		Reg: Registration{CS: "searching", EPS: "home"}, Act: "CAT-M1", Operator: "26201", Band: "LTE BAND 20",
		Cell: "1A2B3C4", TAC: "66C0", RSSI: ptr(-65), RSRP: ptr(-95), RSRQ: ptr(-11), SINR: ptr(7.4),
		Attached: ptr(true), Quota: &Quota{Status: "ACTIVE", DataLeft: ptr(1e6)}, Health: &Health{Uptime: 10},
	}
	with := func(mod func(*Telemetry)) Telemetry {
		n := base
		mod(&n)
		return n
	}
	db := DefaultDeadBands()
	tests := []struct {
		name   string
		db     DeadBands
		last   *Telemetry
		next   Telemetry
		after  time.Duration
		want   bool
		reason string
	}{
		{"first sample", db, nil, base, 0, true, ReasonFirst},
		{"unchanged", db, &base, base, time.Minute, false, ""},
		{"heartbeat due", db, &base, base, 30 * time.Minute, true, ReasonHeartbeat},
		{"heartbeat not yet", db, &base, base, 30*time.Minute - time.Second, false, ""},
		{"heartbeat off", DeadBands{RSRP: 3}, &base, base, 24 * time.Hour, false, ""},
		{"registration", db, &base, with(func(n *Telemetry) { n.Reg.EPS = "roaming" }), 0, true, ReasonReg},
		{"cs domain alone", db, &base, with(func(n *Telemetry) { n.Reg.CS = "denied" }), 0, true, ReasonReg},
		{"act", db, &base, with(func(n *Telemetry) { n.Act = "NB-IoT" }), 0, true, ReasonAct},
		{"operator", db, &base, with(func(n *Telemetry) { n.Operator = "26202" }), 0, true, ReasonOperator},
		{"band", db, &base, with(func(n *Telemetry) { n.Band = "LTE BAND 8" }), 0, true, ReasonBand},
		{"cell", db, &base, with(func(n *Telemetry) { n.Cell = "1A2B3C5" }), 0, true, ReasonCell},
		{"tac", db, &base, with(func(n *Telemetry) { n.TAC = "66C1" }), 0, true, ReasonCell},
		{"detached", db, &base, with(func(n *Telemetry) { n.Attached = ptr(false) }), 0, true, ReasonAttach},
		{"attach unknown", db, &base, with(func(n *Telemetry) { n.Attached = nil }), 0, true, ReasonAttach},
		{"quota status", db, &base, with(func(n *Telemetry) { n.Quota = &Quota{Status: "THROTTLED"} }), 0, true, ReasonQuota},
		{"quota counter only", db, &base, with(func(n *Telemetry) { n.Quota = &Quota{Status: "ACTIVE", DataLeft: ptr(5e5)} }), 0, false, ""},
		{"health only", db, &base, with(func(n *Telemetry) { n.Health = &Health{Uptime: 9999, TelemetryDropped: 3} }), 0, false, ""},
		{"rsrp within band", db, &base, with(func(n *Telemetry) { n.RSRP = ptr(-97) }), 0, false, ""},
		{"rsrp at band", db, &base, with(func(n *Telemetry) { n.RSRP = ptr(-98) }), 0, true, ReasonRSRP},
		{"rsrp up", db, &base, with(func(n *Telemetry) { n.RSRP = ptr(-91) }), 0, true, ReasonRSRP},
		{"rsrp lost", db, &base, with(func(n *Telemetry) { n.RSRP = nil }), 0, true, ReasonRSRP},
		{"rssi", db, &base, with(func(n *Telemetry) { n.RSSI = ptr(-69) }), 0, true, ReasonRSSI},
		{"rsrq within", db, &base, with(func(n *Telemetry) { n.RSRQ = ptr(-13) }), 0, false, ""},
		{"rsrq", db, &base, with(func(n *Telemetry) { n.RSRQ = ptr(-14) }), 0, true, ReasonRSRQ},
		// 7.4 → 4.4 is 2.9999999999999996 in float64, still 3 dB.
		{"sinr float step", db, &base, with(func(n *Telemetry) { n.SINR = ptr(4.4) }), 0, true, ReasonSINR},
		{"sinr within", db, &base, with(func(n *Telemetry) { n.SINR = ptr(5.0) }), 0, false, ""},
		{"band zero: any change", DeadBands{RSRP: 0}, &base, with(func(n *Telemetry) { n.RSRP = ptr(-96) }), 0, true, ReasonRSRP},
		{"band zero: no change", DeadBands{RSRP: 0}, &base, base, 0, false, ""},
		{"band negative: ignored", DeadBands{RSRP: -1}, &base, with(func(n *Telemetry) { n.RSRP = nil }), 0, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, reason := ShouldReport(tc.db, tc.last, t0, tc.next, t0.Add(tc.after))
			if got != tc.want || reason != tc.reason {
				t.Fatalf("ShouldReport = %v %q, want %v %q", got, reason, tc.want, tc.reason)
			}
		})
	}
}
