package bsc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The operator names the calls but not full answer schemas (OPERATOR.md §2); these types are
// our model of them and what the simulator serves. Decoding ignores unknown
// fields and reports missing required ones by name.

// Timestamp accepts RFC 3339 and the platform's "2006-01-02 15:04:05" (GMT)
// form seen in its SMS forwarder; empty string and null leave it zero.
type Timestamp struct{ time.Time }

// PlatformTimeLayout is the platform's GMT timestamp form.
const PlatformTimeLayout = "2006-01-02 15:04:05"

func (t *Timestamp) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("timestamp: want a string, got %s", excerpt(b))
	}
	if s == "" {
		return nil
	}
	for _, layout := range []string{time.RFC3339Nano, PlatformTimeLayout} {
		if v, err := time.Parse(layout, s); err == nil {
			t.Time = v.UTC()
			return nil
		}
	}
	return fmt.Errorf("timestamp %q: want RFC 3339 or %q", excerpt([]byte(s)), PlatformTimeLayout)
}

func (t Timestamp) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte(`""`), nil
	}
	return json.Marshal(t.UTC().Format(time.RFC3339))
}

// ID is an identifier the platform sends as a number in some answers and a
// string in others (its own examples show both).
type ID string

func (id *ID) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*id = ID(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("id: want a string or number, got %s", excerpt(b))
	}
	*id = ID(n.String())
	return nil
}

// tokenAnswer is the token endpoint's answer.
type tokenAnswer struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
	OrgID       ID     `json:"orgId"`
}

// SIM is one SIM card as the platform lists it.
type SIM struct {
	ICCID          string    `json:"iccid"`
	IMSI           string    `json:"imsi"`
	MSISDN         string    `json:"msisdn"`
	IMEI           string    `json:"imei"`
	Status         string    `json:"status"` // e.g. ENABLED, DISABLED
	Label          string    `json:"label"`
	IPAddress      string    `json:"ip_address"`
	ActivationDate Timestamp `json:"activation_date"`
}

// ConnectivityInfo is the platform's view of the SIM on the network.
type ConnectivityInfo struct {
	ICCID     string    `json:"iccid"`
	Status    string    `json:"status"` // ONLINE, OFFLINE, RESETTING
	RAT       string    `json:"rat"`
	Operator  string    `json:"operator"`
	MCC       string    `json:"mcc"`
	MNC       string    `json:"mnc"`
	IPAddress string    `json:"ip_address"`
	LastSeen  Timestamp `json:"last_seen"`
}

// Event is one entry in the SIM's event log.
type Event struct {
	ID          ID        `json:"id"`
	Timestamp   Timestamp `json:"timestamp"`
	Type        string    `json:"type"` // e.g. RESET_QUEUED, RESET_DONE, QUOTA_EXHAUSTED
	Description string    `json:"description"`
}

// Quota statuses.
const (
	QuotaActive    = "ACTIVE"
	QuotaExhausted = "EXHAUSTED"
	QuotaExpired   = "EXPIRED"
)

// Quota is a data or SMS allowance. Total and Remaining are in Unit
// ("bytes" for data, "sms" for SMS).
type Quota struct {
	Status     string     `json:"status"`
	Total      float64    `json:"total"`
	Remaining  float64    `json:"remaining"`
	Unit       string     `json:"unit"`
	Expiry     Timestamp  `json:"expiry_date"`
	Thresholds Thresholds `json:"thresholds"`
}

// Thresholds are percentages of Total consumed at which the platform
// notifies, throttles, and cuts the SIM off. Zero means not configured.
type Thresholds struct {
	Notify    float64 `json:"notify"`
	Throttle  float64 `json:"throttle"`
	HardLimit float64 `json:"hard_limit"`
}

// UsedPercent is the share of Total consumed, 0–100.
func (q *Quota) UsedPercent() float64 {
	if q.Total <= 0 {
		return 100
	}
	return min(100, max(0, 100*(q.Total-q.Remaining)/q.Total))
}

// Exhausted reports whether nothing is left, by the platform's status or by
// the numbers (whichever says so first).
func (q *Quota) Exhausted() bool {
	return strings.EqualFold(q.Status, QuotaExhausted) || q.Remaining <= 0 ||
		(q.Thresholds.HardLimit > 0 && q.UsedPercent() >= q.Thresholds.HardLimit)
}

// Throttled reports whether the throttle threshold has been reached.
func (q *Quota) Throttled() bool {
	return q.Thresholds.Throttle > 0 && q.UsedPercent() >= q.Thresholds.Throttle
}

// Usage is the SIM's consumption in the current period.
type Usage struct {
	PeriodStart Timestamp `json:"period_start"`
	PeriodEnd   Timestamp `json:"period_end"`
	Data        DataUsage `json:"data"`
	SMS         SMSUsage  `json:"sms"`
}

// DataUsage is in bytes.
type DataUsage struct {
	Uplink   int64 `json:"uplink_bytes"`
	Downlink int64 `json:"downlink_bytes"`
	Total    int64 `json:"total_bytes"`
}

// SMSUsage counts messages.
type SMSUsage struct {
	MO int64 `json:"mo"`
	MT int64 `json:"mt"`
}

// ResetQueued is the answer to a reset request. The platform only promises
// the reset was queued; whether the SIM re-attached shows later in
// ConnectivityInfo and Events.
type ResetQueued struct {
	ID          ID        `json:"id"`
	Status      string    `json:"status"`
	RequestedAt Timestamp `json:"requested_at"`
}

// MTSMS is an SMS to the device, as the operator's POST body (OPERATOR.md §3).
type MTSMS struct {
	Payload       string `json:"payload"`
	SourceAddress string `json:"source_address,omitempty"`
}

// SMSAccepted is the answer to SendSMS (201 Created): accepted for delivery,
// not delivered; the delivery report arrives at the application later.
type SMSAccepted struct {
	ID     ID     `json:"id"`
	Status string `json:"status"`
}
