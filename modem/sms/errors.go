package sms

import (
	"context"
	"errors"
	"fmt"

	"cellagent/modem/at"
)

// Class says what a failed submission deserves.
type Class int

const (
	// Transient failures clear by themselves or once the supervisor has
	// recovered the modem (coverage, congestion, SIM busy): retry with
	// back-off.
	Transient Class = iota
	// Permanent failures repeat for this message or this configuration
	// (barred, unknown subscriber, bad PDU, SMSC unknown): record them and
	// do not retry.
	Permanent
	// Unclassified failures are codes outside the table, plain ERROR and
	// +CME errors. Retry them, but only UnclassifiedRetries times: a
	// vendor-specific code may be permanent, and retrying it forever would
	// cost money and hide the fault.
	Unclassified
)

// UnclassifiedRetries bounds the retries of an Unclassified failure.
const UnclassifiedRetries = 3

func (c Class) String() string {
	switch c {
	case Transient:
		return "transient"
	case Permanent:
		return "permanent"
	}
	return "unclassified"
}

// cmsClass is the classification of +CMS ERROR codes (TS 27.005 §3.2.5;
// below 128 the TS 24.011 RP-cause of the network's refusal).
var cmsClass = map[int]Class{
	// Network causes the sender cannot fix: the number, the subscription
	// or the message itself is wrong.
	1:  Permanent, // unassigned number
	8:  Permanent, // operator determined barring
	10: Permanent, // call barred
	21: Permanent, // short message transfer rejected
	27: Permanent, // destination out of service
	28: Permanent, // unidentified subscriber
	29: Permanent, // facility rejected
	30: Permanent, // unknown subscriber
	50: Permanent, // requested facility not subscribed
	69: Permanent, // requested facility not implemented
	81: Permanent, // invalid short message transfer reference value
	95: Permanent, // invalid message, unspecified
	96: Permanent, // invalid mandatory information
	97: Permanent, // message type non-existent
	98: Permanent, // message not compatible with protocol state
	99: Permanent, // information element non-existent

	// Network causes that pass: the network or the SMSC is overloaded
	// or briefly broken.
	38: Transient, // network out of order
	41: Transient, // temporary failure
	42: Transient, // congestion
	47: Transient, // resources unavailable

	// Modem-side codes about this PDU or configuration.
	302: Permanent, // operation not allowed (e.g. text mode)
	303: Permanent, // operation not supported
	304: Permanent, // invalid PDU mode parameter: our PDU is wrong
	305: Permanent, // invalid text mode parameter
	330: Permanent, // SMSC address unknown: fix the configuration

	// Modem-side codes about the modem's state, which the supervisor
	// recovers; the message itself is fine.
	300: Transient, // ME failure
	301: Transient, // SMS service of ME reserved
	310: Transient, // SIM not inserted (e.g. during a SIM reset)
	313: Transient, // SIM failure
	314: Transient, // SIM busy
	320: Transient, // memory failure
	322: Transient, // memory full: freed by deleting read messages
	331: Transient, // no network service
	332: Transient, // network timeout
}

// Classify returns the class of a +CMS ERROR code.
func Classify(code int) Class {
	if c, ok := cmsClass[code]; ok {
		return c
	}
	return Unclassified
}

// ClassOf classifies any error from Send. Time-outs, a closed port and
// cancellation are Transient: the engine's ESC abandons an unsent PDU. A
// time-out after the PDU went out may mean the message was sent without
// its +CMGS reaching us, so a retry can duplicate it; SMS gives no way to
// find out, and duplicating beats losing.
func ClassOf(err error) Class {
	var cms *at.CMSError
	switch {
	case errors.As(err, &cms):
		return Classify(cms.Code)
	case errors.Is(err, at.ErrTimeout), errors.Is(err, at.ErrClosed),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return Transient
	}
	return Unclassified
}

// SendError is the failure of one part of a Send.
type SendError struct {
	Part, Parts int   // the part that failed, from 1, of how many
	MRs         []int // references of the parts the network accepted before it
	Code        int   // the +CMS ERROR code, -1 for other failures
	Class       Class
	Err         error
}

func (e *SendError) Error() string {
	return fmt.Sprintf("sms: part %d of %d not sent (%s): %v", e.Part, e.Parts, e.Class, e.Err)
}

func (e *SendError) Unwrap() error { return e.Err }

// Permanent reports whether retrying is pointless.
func (e *SendError) Permanent() bool { return e.Class == Permanent }

// Meaning is a person's reading of an error from this package: "+CMS
// ERROR 330 (SMSC address unknown)" with advice where there is any.
func Meaning(err error) string {
	var cms *at.CMSError
	if !errors.As(err, &cms) {
		return err.Error()
	}
	text := cms.Text
	if text == "" {
		text = "no standard meaning"
	}
	s := fmt.Sprintf("+CMS ERROR %d (%s)", cms.Code, text)
	if cms.Code < 0 {
		s = fmt.Sprintf("+CMS ERROR (%s)", text)
	}
	switch cms.Code {
	case 330:
		s += ": the modem has no service centre number; set one with --smsc or AT+CSCA"
	case 331:
		s += ": the modem is not registered"
	case 322:
		s += ": SIM storage is full; delete messages"
	}
	return s
}
