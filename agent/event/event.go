// Package event is what the agent reports about itself: recovery steps,
// link state changes, SIM and modem swaps, quota, errors. The agent's
// parts raise events of this type; the transports translate them at the
// edge (transport/mqtt publishes them on <prefix>/<id>/event).
package event

import (
	"fmt"
	"time"
)

// Types; consumers must accept others.
const (
	Recovery = "recovery"
	SIM      = "sim"
	Modem    = "modem"
	Quota    = "quota"
	Error    = "error"
	Agent    = "agent"
	// SMSCommand: a signed SMS command ran, or (rate-limited, never with
	// its text) one was refused.
	SMSCommand = "sms_command"
)

// Levels.
const (
	Info = "info"
	Warn = "warn"
	Err  = "error"
)

// Attrs are an event's details. Values keep their types: strings, bools,
// ints and float64s, so a time-series store keeps numbers as numbers.
type Attrs map[string]any

// Event is one report.
type Event struct {
	Time  time.Time
	Type  string
	Level string // Info, Warn or Err
	Msg   string
	Attrs Attrs
}

// Attr returns attribute k as text, "" when absent: for logs and tests
// that compare values without caring for their type.
func (e Event) Attr(k string) string {
	v, ok := e.Attrs[k]
	if !ok {
		return ""
	}
	return fmt.Sprint(v)
}
