package agent

import (
	"math"
	"time"

	"cellagent/transport/mqtt"
)

// deadBands configure report-by-exception, the agent's telemetry policy
// (the transport only carries what it decides): a telemetry sample is worth
// its bytes only when it tells the fleet something new. A measurement
// must move by at least its band (in dB) from the last reported value; a
// band of 0 reports any change, a negative band never reports on that
// measurement alone.
type deadBands struct {
	RSSI, RSRP, RSRQ, SINR float64
	// Heartbeat reports even an unchanged sample after this long, so the
	// fleet can tell "steady" from "stuck"; 0 disables it.
	Heartbeat time.Duration
}

// Report reasons.
const (
	reasonFirst     = "first"
	reasonHeartbeat = "heartbeat"
	reasonReg       = "registration"
	reasonAct       = "act"
	reasonOperator  = "operator"
	reasonBand      = "band"
	reasonCell      = "cell"
	reasonAttach    = "attach"
	reasonQuota     = "quota"
	reasonRSSI      = "rssi"
	reasonRSRP      = "rsrp"
	reasonRSRQ      = "rsrq"
	reasonSINR      = "sinr"
)

// shouldReport decides whether next goes out, comparing it with last, the
// last sample reported (queued for publishing), reported at lastAt. It
// compares with the last report rather than the last sample so a slow
// drift still crosses the band eventually. Any change of registration,
// access technology, operator, band, cell, tracking area, attach state or
// quota status is reported, as is a reading appearing or disappearing.
// Health and quota counters ride along but never trigger a report: they
// change all the time. The reason says which rule fired.
func shouldReport(db deadBands, last *mqtt.Telemetry, lastAt time.Time, next mqtt.Telemetry, now time.Time) (bool, string) {
	if last == nil {
		return true, reasonFirst
	}
	switch {
	case last.Reg != next.Reg:
		return true, reasonReg
	case last.Act != next.Act:
		return true, reasonAct
	case last.Operator != next.Operator:
		return true, reasonOperator
	case last.Band != next.Band:
		return true, reasonBand
	case last.Cell != next.Cell || last.TAC != next.TAC:
		return true, reasonCell
	case !equalPtr(last.Attached, next.Attached):
		return true, reasonAttach
	case quotaStatus(last.Quota) != quotaStatus(next.Quota):
		return true, reasonQuota
	case beyond(last.RSSI, next.RSSI, db.RSSI):
		return true, reasonRSSI
	case beyond(last.RSRP, next.RSRP, db.RSRP):
		return true, reasonRSRP
	case beyond(last.RSRQ, next.RSRQ, db.RSRQ):
		return true, reasonRSRQ
	case beyond(last.SINR, next.SINR, db.SINR):
		return true, reasonSINR
	case db.Heartbeat > 0 && !now.Before(lastAt.Add(db.Heartbeat)):
		return true, reasonHeartbeat
	}
	return false, ""
}

func equalPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func quotaStatus(q *mqtt.Quota) string {
	if q == nil {
		return ""
	}
	return q.Status
}

// beyond reports whether a reading crossed its dead-band, or appeared or
// vanished (nil is "unknown", itself news).
func beyond[T int | float64](a, b *T, band float64) bool {
	if band < 0 {
		return false
	}
	if a == nil || b == nil {
		return a != b
	}
	d := math.Abs(float64(*b) - float64(*a))
	if band == 0 {
		return d > 0
	}
	// SINR comes in fifths of a dB, and 7.4-4.4 is 2.9999999999999996 in
	// float64: the tolerance keeps a 3 dB step a 3 dB step.
	return d >= band-1e-9
}
