package receiver

import (
	"errors"
	"time"

	"cellagent/transport/smscmd"
)

// RecordVersion is the "v" of Record, the JSON-lines contract of
// `cellagent bsc receive --json`; a change that breaks readers bumps it.
const RecordVersion = 1

// Record kinds.
const (
	KindSMS            = "sms"             // an MO SMS, whole
	KindReply          = "command_reply"   // an MO SMS that is a signed command reply
	KindDeliveryReport = "delivery_report" // the platform's PATCH for an MT SMS
)

// Record is one thing the platform forwarded, as stored and shown.
type Record struct {
	V    int    `json:"v"`
	Seq  uint64 `json:"seq"`  // order of arrival in this store
	Kind string `json:"kind"` // sms, command_reply, delivery_report
	// ID is the platform's id: of the first part for an MO SMS, of the
	// MT SMS for a delivery report.
	ID         string    `json:"id"`
	ICCID      string    `json:"iccid"`
	Received   time.Time `json:"received"`
	SubmitDate string    `json:"submit_date,omitempty"` // GMT, as the platform wrote it
	From       string    `json:"from,omitempty"`
	To         string    `json:"to,omitempty"`
	DCS        int       `json:"dcs"`
	Parts      int       `json:"parts,omitempty"`
	Text       string    `json:"text,omitempty"`     // dcs 0
	DataHex    string    `json:"data_hex,omitempty"` // dcs 4
	// Reply is a command reply whose signature verified.
	Reply *Reply `json:"reply,omitempty"`
	// ReplyError says why a text that claims to be a reply is not shown
	// as one (no key for the SIM, a bad signature, malformed).
	ReplyError string `json:"reply_error,omitempty"`
	Status     string `json:"status,omitempty"`     // delivery report, e.g. DELIVERED
	FinalDate  string `json:"final_date,omitempty"` // delivery report, GMT
}

// Reply is a verified command reply.
type Reply struct {
	Counter uint64   `json:"counter"` // the command's counter
	Command string   `json:"command"`
	OK      bool     `json:"ok"`
	Fields  []string `json:"fields"`
}

// Keys finds a SIM's command key; an error means none is known.
type Keys func(iccid string) ([]byte, error)

// Decorate verifies a record that claims to be a command reply. Keys
// are looked at when a record is shown, not when it is stored, so a key
// installed later still verifies what arrived before.
func Decorate(r Record, keys Keys) Record {
	if r.Kind != KindSMS || !smscmd.LooksLike(r.Text) {
		return r
	}
	r.Kind = KindReply
	if keys == nil {
		r.ReplyError = "no key"
		return r
	}
	key, err := keys(r.ICCID)
	if err != nil {
		r.ReplyError = "no key for this SIM"
		return r
	}
	m, err := smscmd.Verify(key, r.ICCID, r.Text)
	switch {
	case errors.Is(err, smscmd.ErrBadMAC):
		r.ReplyError = "signature does not verify"
	case err != nil:
		r.ReplyError = "malformed"
	case m.Kind != smscmd.Reply:
		r.ReplyError = "a command, not a reply"
	default:
		r.Reply = &Reply{Counter: m.Counter, Command: m.Verb, OK: m.Args[0] == "ok", Fields: m.Args[1:]}
		if r.Reply.Fields == nil {
			r.Reply.Fields = []string{}
		}
	}
	return r
}
