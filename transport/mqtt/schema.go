package mqtt

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// SchemaVersion is the "v" of every payload. A consumer that sees a higher
// version than it knows must not guess: fields may have changed meaning.
// The topic prefix carries the major version too (DefaultPrefix), so a v2
// fleet can run beside v1 consumers on the same broker.
const SchemaVersion = 1

// EventVersion is the "v" of event payloads: 2 since attrs keep their
// JSON types (numbers as numbers, booleans as booleans); v1 sent every
// attr as a string. The other kinds are unchanged at SchemaVersion.
const EventVersion = 2

// Version is the "v" of kind k's payloads.
func Version(k Kind) int {
	if k == KindEvent {
		return EventVersion
	}
	return SchemaVersion
}

// DefaultPrefix is the first topic levels of every topic.
const DefaultPrefix = "cellagent/v1"

// Kind names a device topic below <prefix>/<device-id>/. The data kinds
// double as topic suffixes and as the kind tag of queued records.
type Kind string

// Device topics (SCHEMA.md).
const (
	KindStatus    Kind = "status"         // retained birth "online" / LWT "offline"
	KindTelemetry Kind = "telemetry"      // retained, report-by-exception
	KindEvent     Kind = "event"          // recovery steps, SIM/modem changes, errors
	KindSMSIn     Kind = "sms/in"         // MT messages, stable ids
	KindSMSResult Kind = "sms/out/result" // MO outcomes and delivery reports
)

// Command names, the <name> of <prefix>/<id>/cmd/<name>.
const (
	CmdSMSSend = "sms/send"
	CmdStatus  = "status"
	CmdRecover = "recover"
)

// commandNames lists the commands in subscription order.
var commandNames = []string{CmdSMSSend, CmdStatus, CmdRecover}

// Topics builds the topics of one device.
type Topics struct {
	Prefix string
	Device string
}

// Topic returns <prefix>/<device>/<kind>.
func (t Topics) Topic(k Kind) string { return t.Prefix + "/" + t.Device + "/" + string(k) }

// Command returns <prefix>/<device>/cmd/<name>.
func (t Topics) Command(name string) string { return t.Prefix + "/" + t.Device + "/cmd/" + name }

// CommandResult returns <prefix>/<device>/cmd/<name>/result.
func (t Topics) CommandResult(name string) string { return t.Command(name) + "/result" }

// ParsedTopic is what ParseTopic found in a topic name.
type ParsedTopic struct {
	Device  string
	Kind    Kind   // empty for command topics
	Command string // set for cmd/<name> and cmd/<name>/result
	Result  bool   // cmd/<name>/result
}

// ParseTopic splits a topic below prefix. It accepts only the topics of
// the schema, so a consumer never acts on a look-alike.
func ParseTopic(prefix, topic string) (ParsedTopic, bool) {
	rest, ok := strings.CutPrefix(topic, prefix+"/")
	if !ok {
		return ParsedTopic{}, false
	}
	dev, sub, ok := strings.Cut(rest, "/")
	if !ok || ValidateLevel(dev) != nil {
		return ParsedTopic{}, false
	}
	switch k := Kind(sub); k {
	case KindStatus, KindTelemetry, KindEvent, KindSMSIn, KindSMSResult:
		return ParsedTopic{Device: dev, Kind: k}, true
	}
	name, ok := strings.CutPrefix(sub, "cmd/")
	if !ok {
		return ParsedTopic{}, false
	}
	p := ParsedTopic{Device: dev}
	if n, isResult := strings.CutSuffix(name, "/result"); isResult {
		name, p.Result = n, true
	}
	for _, c := range commandNames {
		if name == c {
			p.Command = name
			return p, true
		}
	}
	return ParsedTopic{}, false
}

// ValidateLevel checks one topic level such as a device id: non-empty, no
// separators or wildcards, and no characters a shell or an ACL pattern
// would trip over.
func ValidateLevel(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > 64 {
		return fmt.Errorf("%d bytes, at most 64", len(s))
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == ':'
		if !ok {
			return fmt.Errorf("character %q not allowed (letters, digits, - _ . : only)", r)
		}
	}
	return nil
}

// ValidatePrefix checks a topic prefix: one or more levels without
// wildcards, not starting with '$' (reserved for broker topics such as
// $SYS and $share).
func ValidatePrefix(p string) error {
	if p == "" {
		return errors.New("empty")
	}
	if !utf8.ValidString(p) || strings.ContainsAny(p, "+#\x00") {
		return fmt.Errorf("%q holds a wildcard or an invalid character", p)
	}
	if strings.HasPrefix(p, "$") || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") {
		return fmt.Errorf("%q: no leading '$' or '/', no trailing '/', no empty level", p)
	}
	return nil
}

// Header opens every queued payload (telemetry, event, sms/in,
// sms/out/result). Seq counts the messages of one topic within one
// session, from 1: a consumer that sees it jump knows messages were lost
// (QoS 0 telemetry); the next birth restarts it. Q is the item's position
// in the device's durable queue and survives restarts, so (device, topic,
// q) identifies a message across the redeliveries QoS 1 allows.
// Replayed marks data that waited in the store across a disconnect or a
// restart, so dashboards do not take it for live readings.
type Header struct {
	V        int    `json:"v"`
	Seq      uint64 `json:"seq"`
	Q        uint64 `json:"q"`
	Replayed bool   `json:"replayed,omitempty"`
}

// Identity describes the gateway in its birth message.
type Identity struct {
	IMEI     string `json:"imei,omitempty"`
	ICCID    string `json:"iccid,omitempty"`
	IMSI     string `json:"imsi,omitempty"`
	Model    string `json:"model,omitempty"`
	Firmware string `json:"fw,omitempty"`    // modem firmware revision
	Agent    string `json:"agent,omitempty"` // cellagent version
}

// Status states.
const (
	Online  = "online"
	Offline = "offline"
)

// Status is the retained payload of <prefix>/<id>/status. The birth
// (online) carries the identity; the last will (offline) only the session
// it belongs to, so a consumer ignores a late will of an older session
// that arrives after a newer birth. Session grows with every connection
// attempt (the birth/death counter of Sparkplug B).
type Status struct {
	V       int    `json:"v"`
	State   string `json:"state"`
	Session uint64 `json:"session"`
	TS      int64  `json:"ts,omitempty"` // unix s: birth and clean shutdown only
	// Clean is set on the offline the agent publishes itself when it
	// stops; a will (crash, lost link) never has it.
	Clean bool `json:"clean,omitempty"`
	// KeepAlive in seconds tells consumers how late the will may come:
	// the broker waits 1.5 keep-alives before it declares the link dead.
	KeepAlive int `json:"ka,omitempty"`
	Identity
}

// Registration is the registration state per domain, as the names
// "home", "roaming", "searching", "denied", "not-searching", "unknown"
// (the modem layer's RegStat names). Empty: not read.
type Registration struct {
	CS  string `json:"cs,omitempty"`  // +CREG
	PS  string `json:"ps,omitempty"`  // +CGREG
	EPS string `json:"eps,omitempty"` // +CEREG
}

// registeredStates are the names under which the device may use the
// network.
var registeredStates = map[string]bool{
	"home": true, "roaming": true, "home-csfb-not-preferred": true, "roaming-csfb-not-preferred": true,
}

// Overall judges the domains the way the modem layer does: a registered
// domain wins, EPS first, because a Cat-M-only SIM reports CS "searching"
// or "denied" while it works on LTE; otherwise the first domain read, EPS
// first.
func (r Registration) Overall() string {
	order := []string{r.EPS, r.PS, r.CS}
	for _, s := range order {
		if registeredStates[s] {
			return s
		}
	}
	for _, s := range order {
		if s != "" {
			return s
		}
	}
	return ""
}

// Quota is the operator allowance as the BSC API reports it.
type Quota struct {
	Status    string   `json:"status,omitempty"`    // e.g. ACTIVE, THROTTLED, EXHAUSTED
	DataLeft  *float64 `json:"data_left,omitempty"` // bytes
	SMSLeft   *float64 `json:"sms_left,omitempty"`
	CheckedAt int64    `json:"at,omitempty"` // unix s of the API answer
}

// Health is the agent's own state.
type Health struct {
	Uptime           int64  `json:"up"`                 // s since the agent started
	EventsQueued     int    `json:"evq,omitempty"`      // ordered queue length
	TelemetryQueued  int    `json:"tmq,omitempty"`      // telemetry queue length
	TelemetryDropped uint64 `json:"tmdrop,omitempty"`   // dropped oldest, ever
	Recoveries       int    `json:"recov,omitempty"`    // ladder steps run today
	LastError        string `json:"last_err,omitempty"` // most recent failure, short
}

// Telemetry is the body of <prefix>/<id>/telemetry. Pointers are nil when
// the modem could not say: "unknown" must never read as 0 dBm.
type Telemetry struct {
	TS       int64        `json:"ts"` // unix s of the sample
	Reg      Registration `json:"reg,omitzero"`
	Act      string       `json:"act,omitempty"`  // e.g. CAT-M1, NB-IoT, GSM
	Operator string       `json:"op,omitempty"`   // MCC+MNC
	Band     string       `json:"band,omitempty"` // as the modem prints it
	Cell     string       `json:"cell,omitempty"` // cell id, hex
	TAC      string       `json:"tac,omitempty"`  // tracking/location area, hex
	RSSI     *int         `json:"rssi,omitempty"` // dBm
	RSRP     *int         `json:"rsrp,omitempty"` // dBm
	RSRQ     *int         `json:"rsrq,omitempty"` // dB
	SINR     *float64     `json:"sinr,omitempty"` // dB
	Attached *bool        `json:"ps_att,omitempty"`
	Quota    *Quota       `json:"quota,omitempty"`
	Health   *Health      `json:"health,omitempty"`
}

// Event types on the wire, for consumers (the agent raises its own,
// agent/event, under the same names); consumers must accept others.
const (
	EventRecovery   = "recovery"
	EventSIM        = "sim"
	EventModem      = "modem"
	EventQuota      = "quota"
	EventError      = "error"
	EventAgent      = "agent"
	EventSMSCommand = "sms_command"
)

// Event is the body of <prefix>/<id>/event. Type is one of the agent's
// event types (recovery, sim, modem, quota, error, agent, state, alert,
// sms_command;
// consumers must accept others). Attrs values are strings, numbers or
// booleans, each in its own JSON type (EventVersion).
type Event struct {
	TS    int64          `json:"ts"`
	Type  string         `json:"type"`
	Level string         `json:"level,omitempty"` // info, warn, error
	Msg   string         `json:"msg,omitempty"`
	Attrs map[string]any `json:"attrs,omitempty"`
}

// SMSIn is the body of <prefix>/<id>/sms/in, and the agent's inbound
// message as its inbox stores it; ID is stable across redeliveries.
type SMSIn struct {
	ID       string    `json:"id"`
	From     string    `json:"from,omitempty"`
	SCTS     time.Time `json:"scts,omitzero"`
	Received time.Time `json:"received"`
	Alphabet string    `json:"alphabet,omitempty"`
	Text     string    `json:"text,omitempty"`
	Data     []byte    `json:"data,omitempty"` // base64 in JSON
	Parts    int       `json:"parts"`
	Missing  []int     `json:"missing,omitempty"` // part numbers that never arrived
	// Error says why the message could not be decoded; PDUs then carry it
	// raw, so nothing is lost.
	Error string   `json:"error,omitempty"`
	PDUs  []string `json:"pdus"`
}

// SMSResult is the body of <prefix>/<id>/sms/out/result: what became of an
// MO request (ID is the sms/send command id). One request may produce
// several results: "sent", then "delivered" or "failed".
type SMSResult struct {
	TS        int64  `json:"ts"`
	ID        string `json:"id"`
	State     string `json:"state"` // sent, delivered, failed
	Refs      []int  `json:"refs,omitempty"`
	Delivered []int  `json:"delivered,omitempty"`
	Code      int    `json:"code,omitempty"` // +CMS ERROR or TP-ST
	Reason    string `json:"reason,omitempty"`
	Attempts  int    `json:"attempts,omitempty"`
}

// CommandResult is the payload of <prefix>/<id>/cmd/<name>/result.
type CommandResult struct {
	V     int    `json:"v"`
	ID    string `json:"id"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	TS    int64  `json:"ts"`
}

// Wire forms of the queued kinds, as consumers decode them: the header
// fields and the body fields side by side in one object.
type (
	TelemetryMsg struct {
		Header
		Telemetry
	}
	EventMsg struct {
		Header
		Event
	}
	SMSInMsg struct {
		Header
		SMSIn
	}
	SMSResultMsg struct {
		Header
		SMSResult
	}
)
