package bscemu

import (
	"time"
)

const (
	smsBuffered  = "BUFFERED"  // no modem registered yet
	smsPending   = "PENDING"   // queued for delivery to the modem
	smsDelivered = "DELIVERED" // the modem accepted it
)

// Event is one entry in a SIM's event log.
type Event struct {
	ID          int64
	Time        time.Time
	Type        string
	Description string
}

// MTSMS is an SMS submitted through the API for the device.
type MTSMS struct {
	ID            int64
	Payload       string
	SourceAddress string
	Status        string
	Submitted     time.Time
	Final         time.Time
}

// SIMState is a snapshot of one simulated SIM.
type SIMState struct {
	ICCID, IMSI, MSISDN, Label, Status  string
	DataTotal, DataRemaining, UsedBytes int64
	SMSTotal, SMSRemaining              int64
	SMSMO, SMSMT                        int64
	ResetCount                          int
	Resetting                           bool
	Events                              []Event
	MT                                  []MTSMS
}

type mtState struct {
	id               int64
	payload, source  string
	status           string
	submitted, final time.Time
}

type simState struct {
	cfg                      SIMConfig
	status                   string
	label                    string
	dataTotal, dataRemaining int64
	usedBytes                int64
	smsTotal, smsRemaining   int64
	smsMO, smsMT             int64
	expiry, periodStart      time.Time
	resetCount               int
	resetting                bool
	events                   []Event
	nextEvent                int64
	mt                       []*mtState
	notified, throttled      bool
}

// Percentages of the data allowance consumed at which events are logged and
// which the quota answer reports.
const (
	thresholdNotify   = 80
	thresholdThrottle = 95
	thresholdHard     = 100
)

func newSIMState(cfg SIMConfig, now time.Time) *simState {
	st := &simState{
		cfg:           cfg,
		status:        cfg.Status,
		label:         cfg.Label,
		dataTotal:     cfg.DataBytes,
		dataRemaining: cfg.DataBytes,
		smsTotal:      cfg.SMS,
		smsRemaining:  cfg.SMS,
		expiry:        now.AddDate(1, 0, 0).UTC().Truncate(time.Second),
		periodStart:   now.UTC().Truncate(24 * time.Hour),
	}
	st.event(now, "SIM_ACTIVATED", "SIM provisioned in the simulator")
	return st
}

func (st *simState) event(now time.Time, typ, desc string) {
	st.nextEvent++
	st.events = append(st.events, Event{ID: st.nextEvent, Time: now.UTC(), Type: typ, Description: desc})
}

func (st *simState) consume(bytes int64, now time.Time) {
	st.usedBytes += bytes
	was := st.dataRemaining
	st.dataRemaining = max(0, st.dataRemaining-bytes)
	used := 100 * float64(st.dataTotal-st.dataRemaining) / float64(st.dataTotal)
	if !st.notified && used >= thresholdNotify {
		st.notified = true
		st.event(now, "THRESHOLD_NOTIFY", "data usage reached the notify threshold")
	}
	if !st.throttled && used >= thresholdThrottle {
		st.throttled = true
		st.event(now, "THRESHOLD_THROTTLE", "data usage reached the throttle threshold")
	}
	if was > 0 && st.dataRemaining == 0 {
		st.event(now, "QUOTA_EXHAUSTED", "data quota exhausted")
	}
}

func (st *simState) topup(dataBytes, sms int64, now time.Time) {
	st.dataTotal += dataBytes
	st.dataRemaining += dataBytes
	st.smsTotal += sms
	st.smsRemaining += sms
	used := 100 * float64(st.dataTotal-st.dataRemaining) / float64(st.dataTotal)
	st.notified = used >= thresholdNotify
	st.throttled = used >= thresholdThrottle
	st.event(now, "TOPUP", "quota topped up")
}

func (st *simState) dataStatus(now time.Time) string {
	switch {
	case now.After(st.expiry):
		return "EXPIRED"
	case st.dataRemaining <= 0:
		return "EXHAUSTED"
	}
	return "ACTIVE"
}

func (st *simState) smsStatus(now time.Time) string {
	switch {
	case now.After(st.expiry):
		return "EXPIRED"
	case st.smsRemaining <= 0:
		return "EXHAUSTED"
	}
	return "ACTIVE"
}

func (st *simState) findMT(id int64) *mtState {
	for _, m := range st.mt {
		if m.id == id {
			return m
		}
	}
	return nil
}

func (st *simState) snapshot() SIMState {
	out := SIMState{
		ICCID: st.cfg.ICCID, IMSI: st.cfg.IMSI, MSISDN: st.cfg.MSISDN, Label: st.label, Status: st.status,
		DataTotal: st.dataTotal, DataRemaining: st.dataRemaining, UsedBytes: st.usedBytes,
		SMSTotal: st.smsTotal, SMSRemaining: st.smsRemaining, SMSMO: st.smsMO, SMSMT: st.smsMT,
		ResetCount: st.resetCount, Resetting: st.resetting,
		Events: append([]Event(nil), st.events...),
	}
	for _, m := range st.mt {
		out.MT = append(out.MT, MTSMS{ID: m.id, Payload: m.payload, SourceAddress: m.source, Status: m.status, Submitted: m.submitted, Final: m.final})
	}
	return out
}
