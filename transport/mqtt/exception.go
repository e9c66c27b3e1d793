package mqtt

import (
	"math"
	"time"
)

// DeadBands configure report-by-exception: a telemetry sample is worth
// its bytes only when it tells the fleet something new. A measurement
// must move by at least its band (in dB) from the last reported value; a
// band of 0 reports any change, a negative band never reports on that
// measurement alone.
type DeadBands struct {
	RSSI, RSRP, RSRQ, SINR float64
	// Heartbeat reports even an unchanged sample after this long, so the
	// fleet can tell "steady" from "stuck"; 0 disables it.
	Heartbeat time.Duration
}

// DefaultDeadBands are ±3 dB on the power and quality readings (about the
// step between the modem's own reporting classes, and below what an
// operator acts on) and a 30-minute heartbeat: liveness comes from the
// retained status and its last will, not from telemetry, so the heartbeat
// only has to keep stale readings from looking current. 48 heartbeats of
// ~0.5 kB on the wire are ~24 kB/day.
func DefaultDeadBands() DeadBands {
	return DeadBands{RSSI: 3, RSRP: 3, RSRQ: 3, SINR: 3, Heartbeat: 30 * time.Minute}
}

// Report reasons.
const (
	ReasonFirst     = "first"
	ReasonHeartbeat = "heartbeat"
	ReasonReg       = "registration"
	ReasonAct       = "act"
	ReasonOperator  = "operator"
	ReasonBand      = "band"
	ReasonCell      = "cell"
	ReasonAttach    = "attach"
	ReasonQuota     = "quota"
	ReasonRSSI      = "rssi"
	ReasonRSRP      = "rsrp"
	ReasonRSRQ      = "rsrq"
	ReasonSINR      = "sinr"
)

// ShouldReport decides whether next goes out, comparing it with last, the
// last sample reported (queued for publishing), reported at lastAt. It
// compares with the last report rather than the last sample so a slow
// drift still crosses the band eventually. Any change of registration,
// access technology, operator, band, cell, tracking area, attach state or
// quota status is reported, as is a reading appearing or disappearing.
// Health and quota counters ride along but never trigger a report: they
// change all the time. The reason says which rule fired.
func ShouldReport(db DeadBands, last *Telemetry, lastAt time.Time, next Telemetry, now time.Time) (bool, string) {
	if last == nil {
		return true, ReasonFirst
	}
	switch {
	case last.Reg != next.Reg:
		return true, ReasonReg
	case last.Act != next.Act:
		return true, ReasonAct
	case last.Operator != next.Operator:
		return true, ReasonOperator
	case last.Band != next.Band:
		return true, ReasonBand
	case last.Cell != next.Cell || last.TAC != next.TAC:
		return true, ReasonCell
	case !equalPtr(last.Attached, next.Attached):
		return true, ReasonAttach
	case quotaStatus(last.Quota) != quotaStatus(next.Quota):
		return true, ReasonQuota
	case beyond(last.RSSI, next.RSSI, db.RSSI):
		return true, ReasonRSSI
	case beyond(last.RSRP, next.RSRP, db.RSRP):
		return true, ReasonRSRP
	case beyond(last.RSRQ, next.RSRQ, db.RSRQ):
		return true, ReasonRSRQ
	case beyond(last.SINR, next.SINR, db.SINR):
		return true, ReasonSINR
	case db.Heartbeat > 0 && !now.Before(lastAt.Add(db.Heartbeat)):
		return true, ReasonHeartbeat
	}
	return false, ""
}

func equalPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func quotaStatus(q *Quota) string {
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
