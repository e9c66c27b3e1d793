// Package localapi is the agent's door for programs on the gateway: HTTP
// with JSON bodies on a Unix socket, versioned under /v1/ (see API.md).
// The server takes a [Backend], which the agent implements; the [Client]
// is what the cellagent CLI uses when an agent runs.
//
// Access is by file permissions on the socket (0660, one group), so the
// server authenticates nobody; it protects the agent instead: bodies are
// bounded, every request has a deadline, handlers and streams are
// counted, and whatever a client sends ends in a 4xx with a message.
package localapi

import "time"

// V is the version of every body this package reads and writes; bodies
// carry it as "v". Requests may leave it out (0) or give 1.
const V = 1

// SMSRequest is the body of POST /v1/sms: exactly one of Text and Data.
type SMSRequest struct {
	V    int    `json:"v,omitempty"`
	To   string `json:"to"`
	Text string `json:"text,omitempty"`
	// Data goes out as 8-bit (DCS 4); base64 in JSON.
	Data   []byte `json:"data,omitempty"`
	Report bool   `json:"report,omitempty"`
	// IdempotencyKey makes a retry safe: a request with a key the agent
	// already holds queues nothing and is answered with the first
	// request's id. The key is stored with the message.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// SMSQueued answers POST /v1/sms once the message is on disk.
type SMSQueued struct {
	V     int    `json:"v"`
	ID    string `json:"id"`
	Parts int    `json:"parts"`
	// Duplicate: the key was known; nothing new was queued.
	Duplicate bool `json:"duplicate,omitempty"`
}

// SMSStatus answers GET /v1/sms/{id}: where the message is, and its
// delivery report when one was asked for and came.
type SMSStatus struct {
	V     int    `json:"v"`
	ID    string `json:"id"`
	State string `json:"state"` // queued, sending, sent, delivered, failed
	// Refs are the message references of the parts sent; Delivered the
	// ones a status report confirmed.
	Refs      []int     `json:"refs,omitempty"`
	Delivered []int     `json:"delivered,omitempty"`
	Attempts  int       `json:"attempts"`
	Code      int       `json:"code,omitempty"` // +CMS ERROR or TP-ST of a failure
	Reason    string    `json:"reason,omitempty"`
	LastError string    `json:"last_error,omitempty"` // why the last attempt was retried
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	SentAt    time.Time `json:"sent_at,omitzero"`
}

// Final says whether the state can no longer change, given whether a
// delivery report was asked for.
func (s SMSStatus) Final(report bool) bool {
	switch s.State {
	case "delivered", "failed":
		return true
	case "sent":
		return !report
	}
	return false
}

// Event types in the feed.
const (
	EventSMSIn     = "sms_in"     // an MT SMS, on disk
	EventSMSResult = "sms_result" // an MO SMS was sent, delivered or failed
	EventNotice    = "notice"     // modem, SIM, recovery and link events
	// EventGap is written only to a stream, never stored: records before
	// Seq were dropped (the feed keeps the newest 5000) before this
	// reader read them.
	EventGap = "gap"
)

// Event is one record of GET /v1/events (one JSON object per line) and
// GET /v1/inbox. Seq is durable and increases by one per record; a reader
// passes the last Seq it saw as ?after= to resume without a loss.
// Delivery is at least once: after a crash a record may appear again
// under a new Seq; SMS ids de-duplicate it.
type Event struct {
	V      int         `json:"v"`
	Seq    uint64      `json:"seq"`
	Type   string      `json:"type"`
	TS     time.Time   `json:"ts"`
	SMS    *InboundSMS `json:"sms,omitempty"`
	Result *SMSStatus  `json:"result,omitempty"`
	Notice *Notice     `json:"notice,omitempty"`
	Gap    *GapInfo    `json:"gap,omitempty"`
}

// InboundSMS is an MT message as the agent stored it. ID is stable.
type InboundSMS struct {
	ID       string    `json:"id"`
	From     string    `json:"from,omitempty"`
	SCTS     time.Time `json:"scts,omitzero"`
	Received time.Time `json:"received"`
	Alphabet string    `json:"alphabet,omitempty"`
	Text     string    `json:"text,omitempty"`
	Data     []byte    `json:"data,omitempty"`
	Parts    int       `json:"parts"`
	Missing  []int     `json:"missing,omitempty"`
	Error    string    `json:"error,omitempty"`
	PDUs     []string  `json:"pdus"`
}

// Notice is an agent event, as MQTT's event topic carries it: Attrs
// keep their types (strings, numbers, booleans).
type Notice struct {
	Kind  string         `json:"kind"`
	Level string         `json:"level,omitempty"`
	Msg   string         `json:"msg,omitempty"`
	Attrs map[string]any `json:"attrs,omitempty"`
}

// GapInfo tells a reader what it missed.
type GapInfo struct {
	After uint64 `json:"after"` // the reader's cursor
	Next  uint64 `json:"next"`  // the oldest record still kept
}

// Inbox answers GET /v1/inbox: MT messages after the cursor, oldest
// first; Next is the cursor for the following page.
type Inbox struct {
	V        int     `json:"v"`
	Messages []Event `json:"messages"`
	Next     uint64  `json:"next"`
}

// ATRequest is the body of POST /v1/at: one command, without line end.
type ATRequest struct {
	V       int    `json:"v,omitempty"`
	Command string `json:"command"`
	// TimeoutMS bounds the command (default: the engine's for it; at
	// most 180000).
	TimeoutMS int `json:"timeout_ms,omitempty"`
	// Force sends a command that changes state the agent relies on
	// (echo, PDU mode, functionality, power, SMS routing).
	Force bool `json:"force,omitempty"`
}

// ATResponse answers POST /v1/at. Result is the final result code ("OK",
// "ERROR", "+CME ERROR: 10", …); Lines are the information lines.
type ATResponse struct {
	V      int      `json:"v"`
	Lines  []string `json:"lines"`
	Result string   `json:"result"`
	OK     bool     `json:"ok"`
}

// RecoverRequest is the body of POST /v1/recover.
type RecoverRequest struct {
	V    int    `json:"v,omitempty"`
	Step string `json:"step"`
}

// RecoverQueued answers POST /v1/recover: the step passed its budget
// and is queued; its outcome follows as a notice in the feed.
type RecoverQueued struct {
	V      int    `json:"v"`
	Step   string `json:"step"`
	Queued bool   `json:"queued"`
}

// Error is the body of every 4xx and 5xx answer.
type Error struct {
	V     int    `json:"v"`
	Error string `json:"error"`
}
