package sms

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/warthog618/sms/encoding/pdumode"
	"github.com/warthog618/sms/encoding/tpdu"
	"github.com/warthog618/sms/encoding/ucs2"
)

// Kind is the TPDU type of a decoded message.
type Kind int

// The TPDU types a modem hands to the host. Submit appears when AT+CMGL
// lists messages stored for sending.
const (
	Unknown Kind = iota
	Deliver
	StatusReport
	Submit
)

func (k Kind) String() string {
	switch k {
	case Deliver:
		return "SMS-DELIVER"
	case StatusReport:
		return "SMS-STATUS-REPORT"
	case Submit:
		return "SMS-SUBMIT"
	}
	return "unknown"
}

// MarshalText names the kind in JSON.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads what MarshalText writes, so JSON output decodes.
func (k *Kind) UnmarshalText(b []byte) error {
	for _, c := range []Kind{Unknown, Deliver, StatusReport, Submit} {
		if string(b) == c.String() {
			*k = c
			return nil
		}
	}
	return fmt.Errorf("sms: unknown kind %q", b)
}

// Concat is the concatenation information element of one part.
type Concat struct {
	Ref     int `json:"ref"`
	RefBits int `json:"ref_bits"` // 8 (IEI 0) or 16 (IEI 8)
	Total   int `json:"total"`
	Seq     int `json:"seq"` // from 1
}

// Report is what an SMS-STATUS-REPORT says about an earlier submission.
type Report struct {
	MR        int       `json:"mr"` // the +CMGS reference of the submission
	Recipient string    `json:"recipient"`
	Status    int       `json:"status"` // TP-ST; 0-31 delivered, 32-63 still trying, 64+ failed
	Discharge time.Time `json:"discharge"`
}

// Delivered reports whether the status says the message reached the
// recipient (TS 23.040 §9.2.3.15: 0x00-0x1F completed successfully).
func (r Report) Delivered() bool { return r.Status < 0x20 }

// Final reports whether the SMSC has stopped trying: success, or a
// permanent or final temporary error.
func (r Report) Final() bool { return r.Status < 0x20 || r.Status >= 0x40 }

// Message is one decoded PDU. A PDU that cannot be decoded is still a
// Message: PDU and ID are set, Err says what is wrong, and whatever was
// decoded before the fault is filled in.
type Message struct {
	ID       string    `json:"id"`  // stable across reads; see ID
	PDU      string    `json:"pdu"` // as the modem printed it: SMSC field and TPDU, upper-case hex
	Kind     Kind      `json:"kind"`
	SMSC     string    `json:"smsc,omitempty"`
	From     string    `json:"from,omitempty"` // originator (SMS-DELIVER)
	To       string    `json:"to,omitempty"`   // destination (SMS-SUBMIT)
	SCTS     time.Time `json:"scts"`           // service-centre time stamp, with the SMSC's zone
	PID      byte      `json:"pid"`
	DCS      byte      `json:"dcs"`
	Alphabet Alphabet  `json:"alphabet"`
	Text     string    `json:"text,omitempty"`
	Data     []byte    `json:"data,omitempty"` // 8-bit user data
	Concat   *Concat   `json:"concat,omitempty"`
	Report   *Report   `json:"report,omitempty"`
	Err      error     `json:"-"`

	tpdu *tpdu.TPDU
}

// DecodeHex decodes a PDU as AT+CMGR, AT+CMGL, +CMT and +CDS print it.
func DecodeHex(pduHex string) Message {
	s := strings.TrimSpace(pduHex)
	b, err := hex.DecodeString(s)
	if err != nil {
		m := Message{PDU: strings.ToUpper(s), Err: fmt.Errorf("sms: PDU is not hex: %w", err)}
		m.ID = hashID([]byte(s))
		return m
	}
	return Decode(b)
}

// Decode decodes a PDU: the SMSC field, then an SMS-DELIVER, an
// SMS-STATUS-REPORT or a stored SMS-SUBMIT. It never panics: a fault in
// the decoder becomes Err, like any other undecodable PDU.
func Decode(pdu []byte) (m Message) {
	m = Message{PDU: strings.ToUpper(hex.EncodeToString(pdu))}
	defer func() {
		// The PDU comes from the radio; a decoder bug must not take the
		// receive path down with it.
		if r := recover(); r != nil {
			m.Err = fmt.Errorf("sms: decoder fault: %v", r)
		}
		m.ID = ID(m)
	}()
	m.Err = m.decode(pdu)
	return m
}

func (m *Message) decode(pdu []byte) error {
	p, err := pdumode.UnmarshalBinary(pdu)
	if err != nil {
		return fmt.Errorf("sms: SMSC field: %w", err)
	}
	if p.SMSC.Addr != "" {
		m.SMSC = p.SMSC.Number()
	}
	if len(p.TPDU) == 0 {
		return errors.New("sms: no TPDU after the SMSC field")
	}
	// A host only ever sees SMS-DELIVER and SMS-STATUS-REPORT arriving,
	// and SMS-SUBMIT from its own store; MTI 1 in the MT direction would
	// be a SUBMIT-REPORT, which is never stored.
	t := &tpdu.TPDU{Direction: tpdu.MT}
	switch tpdu.FirstOctet(p.TPDU[0]).MTI() {
	case tpdu.MtDeliver:
		m.Kind = Deliver
	case tpdu.MtSubmit:
		m.Kind, t.Direction = Submit, tpdu.MO
	case tpdu.MtCommand:
		m.Kind = StatusReport
	default:
		return fmt.Errorf("sms: reserved message type in first octet %#02x", p.TPDU[0])
	}
	err = t.UnmarshalBinary(p.TPDU)
	// Keep what was decoded before a fault: the originator and time stamp
	// of a message with corrupt user data still help a person.
	m.fill(t)
	if err != nil {
		return fmt.Errorf("sms: %v: %w", m.Kind, err)
	}
	m.tpdu = t
	return m.decodeUD(t)
}

func (m *Message) fill(t *tpdu.TPDU) {
	m.PID, m.DCS = t.PID, byte(t.DCS)
	switch m.Kind {
	case Deliver:
		m.From, m.SCTS = t.OA.Number(), t.SCTS.Time
	case Submit:
		m.To = t.DA.Number()
	case StatusReport:
		m.SCTS = t.SCTS.Time
		m.Report = &Report{MR: int(t.MR), Recipient: t.RA.Number(), Status: int(t.ST), Discharge: t.DT.Time}
	}
	if segs, seq, ref, ok := t.UDH.ConcatInfo8(); ok {
		m.Concat = &Concat{Ref: ref, RefBits: 8, Total: segs, Seq: seq}
	} else if segs, seq, ref, ok := t.UDH.ConcatInfo16(); ok {
		m.Concat = &Concat{Ref: ref, RefBits: 16, Total: segs, Seq: seq}
	}
}

func (m *Message) decodeUD(t *tpdu.TPDU) error {
	if t.DCS.Compressed() {
		return errors.New("sms: compressed user data (TS 23.042) is not supported")
	}
	a, err := t.Alphabet()
	if err != nil {
		return fmt.Errorf("sms: data coding scheme %#02x: %w", byte(t.DCS), err)
	}
	switch a {
	case tpdu.Alpha8Bit:
		m.Alphabet, m.Data = Data8, append([]byte(nil), t.UD...)
		return nil
	case tpdu.AlphaUCS2:
		m.Alphabet = UCS2
	}
	txt, err := tpdu.DecodeUserData(t.UD, t.UDH, a, tpdu.WithAllCharsets)
	var dangling ucs2.ErrDanglingSurrogate
	if errors.As(err, &dangling) && m.Concat != nil && m.Concat.Seq < m.Concat.Total {
		// A sender may split a surrogate pair across parts; the text up
		// to it is good and reassembly joins the halves.
		err = nil
	}
	m.Text = string(txt)
	if err != nil {
		return fmt.Errorf("sms: user data: %w", err)
	}
	return nil
}

// ID is the stable identity of a received message (the key the store
// dedupes on, see agent/store/inbox.go): a hash over the originator, the service-centre time stamp and the
// PDU, so the same message read twice (after a crash, via +CMT and again
// via AT+CMGL) has one ID. An undecodable PDU hashes its raw bytes.
func ID(m Message) string {
	raw, err := hex.DecodeString(m.PDU)
	if err != nil {
		raw = []byte(m.PDU)
	}
	if m.Err != nil {
		return hashID(raw)
	}
	addr := m.From
	switch m.Kind {
	case Submit:
		addr = m.To
	case StatusReport:
		addr = m.Report.Recipient
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", addr, m.SCTS.Format(time.RFC3339))
	h.Write(raw)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func hashID(raw []byte) string {
	s := sha256.Sum256(raw)
	return hex.EncodeToString(s[:16])
}
