package agent

import (
	"testing"
	"time"

	"cellagent/transport/mqtt"
)

func ptr[T any](v T) *T { return &v }

func TestShouldReport(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	base := mqtt.Telemetry{
		Reg: mqtt.Registration{CS: "searching", EPS: "home"}, Act: "CAT-M1", Operator: "26201", Band: "LTE BAND 20",
		Cell: "1A2B3C4", TAC: "66C0", RSSI: ptr(-65), RSRP: ptr(-95), RSRQ: ptr(-11), SINR: ptr(7.4),
		Attached: ptr(true), Quota: &mqtt.Quota{Status: "ACTIVE", DataLeft: ptr(1e6)}, Health: &mqtt.Health{Uptime: 10},
	}
	with := func(mod func(*mqtt.Telemetry)) mqtt.Telemetry {
		n := base
		mod(&n)
		return n
	}
	db := deadBands{RSSI: 3, RSRP: 3, RSRQ: 3, SINR: 3, Heartbeat: 30 * time.Minute}
	tests := []struct {
		name   string
		db     deadBands
		last   *mqtt.Telemetry
		next   mqtt.Telemetry
		after  time.Duration
		want   bool
		reason string
	}{
		{"first sample", db, nil, base, 0, true, reasonFirst},
		{"unchanged", db, &base, base, time.Minute, false, ""},
		{"heartbeat due", db, &base, base, 30 * time.Minute, true, reasonHeartbeat},
		{"heartbeat not yet", db, &base, base, 30*time.Minute - time.Second, false, ""},
		{"heartbeat off", deadBands{RSRP: 3}, &base, base, 24 * time.Hour, false, ""},
		{"registration", db, &base, with(func(n *mqtt.Telemetry) { n.Reg.EPS = "roaming" }), 0, true, reasonReg},
		{"cs domain alone", db, &base, with(func(n *mqtt.Telemetry) { n.Reg.CS = "denied" }), 0, true, reasonReg},
		{"act", db, &base, with(func(n *mqtt.Telemetry) { n.Act = "NB-IoT" }), 0, true, reasonAct},
		{"operator", db, &base, with(func(n *mqtt.Telemetry) { n.Operator = "26202" }), 0, true, reasonOperator},
		{"band", db, &base, with(func(n *mqtt.Telemetry) { n.Band = "LTE BAND 8" }), 0, true, reasonBand},
		{"cell", db, &base, with(func(n *mqtt.Telemetry) { n.Cell = "1A2B3C5" }), 0, true, reasonCell},
		{"tac", db, &base, with(func(n *mqtt.Telemetry) { n.TAC = "66C1" }), 0, true, reasonCell},
		{"detached", db, &base, with(func(n *mqtt.Telemetry) { n.Attached = ptr(false) }), 0, true, reasonAttach},
		{"attach unknown", db, &base, with(func(n *mqtt.Telemetry) { n.Attached = nil }), 0, true, reasonAttach},
		{"quota status", db, &base, with(func(n *mqtt.Telemetry) { n.Quota = &mqtt.Quota{Status: "THROTTLED"} }), 0, true, reasonQuota},
		{"quota counter only", db, &base, with(func(n *mqtt.Telemetry) { n.Quota = &mqtt.Quota{Status: "ACTIVE", DataLeft: ptr(5e5)} }), 0, false, ""},
		{"health only", db, &base, with(func(n *mqtt.Telemetry) { n.Health = &mqtt.Health{Uptime: 9999, TelemetryDropped: 3} }), 0, false, ""},
		{"rsrp within band", db, &base, with(func(n *mqtt.Telemetry) { n.RSRP = ptr(-97) }), 0, false, ""},
		{"rsrp at band", db, &base, with(func(n *mqtt.Telemetry) { n.RSRP = ptr(-98) }), 0, true, reasonRSRP},
		{"rsrp up", db, &base, with(func(n *mqtt.Telemetry) { n.RSRP = ptr(-91) }), 0, true, reasonRSRP},
		{"rsrp lost", db, &base, with(func(n *mqtt.Telemetry) { n.RSRP = nil }), 0, true, reasonRSRP},
		{"rssi", db, &base, with(func(n *mqtt.Telemetry) { n.RSSI = ptr(-69) }), 0, true, reasonRSSI},
		{"rsrq within", db, &base, with(func(n *mqtt.Telemetry) { n.RSRQ = ptr(-13) }), 0, false, ""},
		{"rsrq", db, &base, with(func(n *mqtt.Telemetry) { n.RSRQ = ptr(-14) }), 0, true, reasonRSRQ},
		// 7.4 → 4.4 is 2.9999999999999996 in float64, still 3 dB.
		{"sinr float step", db, &base, with(func(n *mqtt.Telemetry) { n.SINR = ptr(4.4) }), 0, true, reasonSINR},
		{"sinr within", db, &base, with(func(n *mqtt.Telemetry) { n.SINR = ptr(5.0) }), 0, false, ""},
		{"band zero: any change", deadBands{RSRP: 0}, &base, with(func(n *mqtt.Telemetry) { n.RSRP = ptr(-96) }), 0, true, reasonRSRP},
		{"band zero: no change", deadBands{RSRP: 0}, &base, base, 0, false, ""},
		{"band negative: ignored", deadBands{RSRP: -1}, &base, with(func(n *mqtt.Telemetry) { n.RSRP = nil }), 0, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, reason := shouldReport(tc.db, tc.last, t0, tc.next, t0.Add(tc.after))
			if got != tc.want || reason != tc.reason {
				t.Fatalf("shouldReport = %v %q, want %v %q", got, reason, tc.want, tc.reason)
			}
		})
	}
}
