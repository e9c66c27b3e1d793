// Package sms sends and receives SMS over a modem's AT interface in PDU mode
// (3GPP TS 27.005 / 23.040), using github.com/warthog618/sms for the PDU
// coding. It holds no state of its own: the message references it needs and
// the parts it reassembles are handed in, so the agent can persist them.
package sms

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/warthog618/sms/encoding/pdumode"
	"github.com/warthog618/sms/encoding/tpdu"
)

// MaxParts is the most parts a concatenated message can have: the UDH
// counts them in one octet.
const MaxParts = 255

var (
	// ErrInvalidNumber is returned for a destination or SMSC that is not a
	// phone number.
	ErrInvalidNumber = errors.New("invalid number")
	// ErrTooLong is returned for a message that needs more than MaxParts
	// parts.
	ErrTooLong = errors.New("message too long")
	// ErrEmpty is returned for a message without text or data.
	ErrEmpty = errors.New("empty message")
)

// Alphabet is how the user data of a message is coded.
type Alphabet int

// The alphabets of TS 23.038 that we send; a decoded message reports the
// one its DCS names.
const (
	GSM7  Alphabet = iota // GSM 7-bit default alphabet and its extension table
	Data8                 // 8-bit data, DCS 4
	UCS2                  // UTF-16 big-endian, surrogate pairs for emoji
)

func (a Alphabet) String() string {
	switch a {
	case GSM7:
		return "GSM 7-bit"
	case Data8:
		return "8-bit data"
	case UCS2:
		return "UCS-2"
	}
	return fmt.Sprintf("Alphabet(%d)", int(a))
}

// MarshalText names the alphabet in JSON.
func (a Alphabet) MarshalText() ([]byte, error) {
	switch a {
	case GSM7:
		return []byte("gsm7"), nil
	case Data8:
		return []byte("8bit"), nil
	case UCS2:
		return []byte("ucs2"), nil
	}
	return nil, fmt.Errorf("sms: unknown alphabet %d", int(a))
}

// UnmarshalText reads what MarshalText writes, so JSON output decodes.
func (a *Alphabet) UnmarshalText(b []byte) error {
	for _, c := range []Alphabet{GSM7, Data8, UCS2} {
		if t, _ := c.MarshalText(); string(t) == string(b) {
			*a = c
			return nil
		}
	}
	return fmt.Errorf("sms: unknown alphabet %q", b)
}

// RefSource hands out the 8-bit concatenation reference for the next
// multi-part message to a destination. The recipient tells messages apart
// by (originator, reference), so a reference must not repeat for one
// destination while an earlier message may still be reassembling there;
// the agent persists its counter so a restart does not reuse references.
type RefSource interface {
	NextRef(to string) (byte, error)
}

// MemoryRefs is a RefSource with one counter per destination, kept in
// memory. Start with a random first value where nothing is persisted, so
// that two runs of a tool do not both begin at the same reference.
type MemoryRefs struct {
	mu    sync.Mutex
	first byte
	next  map[string]byte
}

// NewMemoryRefs returns counters that start at first.
func NewMemoryRefs(first byte) *MemoryRefs {
	return &MemoryRefs{first: first, next: map[string]byte{}}
}

// NextRef returns the destination's next reference.
func (r *MemoryRefs) NextRef(to string) (byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, ok := r.next[to]
	if !ok {
		n = r.first
	}
	r.next[to] = n + 1
	return n, nil
}

// randomRef is the reference for callers without a RefSource.
func randomRef() (byte, error) {
	var b [1]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("sms: random concatenation reference: %w", err)
	}
	return b[0], nil
}

// Options shape an SMS-SUBMIT.
type Options struct {
	// SMSC is written into the PDU's SMSC field. Empty leaves the field
	// empty ("00"), and the modem uses its AT+CSCA setting.
	SMSC string
	// StatusReport asks the network for an SMS-STATUS-REPORT (TP-SRR).
	StatusReport bool
	// Validity is the relative validity period; 0 omits it, leaving the
	// SMSC's default.
	Validity time.Duration
	// Refs supplies concatenation references; nil draws a random one per
	// message, which suits one-off tools but may repeat.
	Refs RefSource
}

// PDU is one SMS-SUBMIT ready for AT+CMGS.
type PDU struct {
	// Hex is the SMSC field and the TPDU, upper-case, as typed at the
	// "> " prompt.
	Hex string
	// Length is the TPDU's octet count, not counting the SMSC field: the
	// <length> of AT+CMGS=<length>.
	Length int
}

// EncodeText builds the SMS-SUBMIT PDUs for text to the destination to:
// GSM 7-bit when every character is in the default alphabet or its
// extension table, else UCS-2; concatenated when it does not fit one.
func EncodeText(to, text string, o Options) ([]PDU, error) {
	if text == "" {
		return nil, ErrEmpty
	}
	ud, alpha := userData(text)
	return encode(to, ud, alpha, o)
}

// EncodeData builds SMS-SUBMIT PDUs carrying data as 8-bit user data (DCS 4).
func EncodeData(to string, data []byte, o Options) ([]PDU, error) {
	if len(data) == 0 {
		return nil, ErrEmpty
	}
	return encode(to, data, Data8, o)
}

// Parts reports how many parts text takes and in which alphabet, as
// EncodeText would send it. n may exceed MaxParts; EncodeText then fails.
func Parts(text string) (n int, alpha Alphabet) {
	if text == "" {
		return 0, GSM7
	}
	ud, alpha := userData(text)
	t := template(alpha)
	return len(t.Segment(ud)), alpha
}

// userData codes text in the default GSM alphabet when it can. National
// language shift tables are not used: not every handset and gateway
// decodes them, and UCS-2 always works.
func userData(text string) ([]byte, Alphabet) {
	ud, _, a := tpdu.EncodeUserData([]byte(text))
	if a == tpdu.Alpha7Bit {
		return ud, GSM7
	}
	return ud, UCS2
}

func template(alpha Alphabet) tpdu.TPDU {
	t := tpdu.TPDU{Direction: tpdu.MO, FirstOctet: tpdu.FirstOctet(0).WithMTI(tpdu.MtSubmit)}
	switch alpha {
	case UCS2:
		t.DCS = tpdu.DcsUCS2Data
	case Data8:
		t.DCS = tpdu.Dcs8BitData
	}
	return t
}

func encode(to string, ud []byte, alpha Alphabet, o Options) ([]PDU, error) {
	da, err := Address(to)
	if err != nil {
		return nil, err
	}
	smsc, err := smscField(o.SMSC)
	if err != nil {
		return nil, err
	}
	t := template(alpha)
	t.DA = da
	if o.StatusReport {
		t.FirstOctet |= tpdu.FoSRR
	}
	if o.Validity > 0 {
		var vp tpdu.ValidityPeriod
		d := o.Validity
		// The library codes 5 minutes as 0x01 (10 minutes); any shorter
		// duration gives 0x00, the 5 minutes TS 23.040 means.
		if d <= 5*time.Minute {
			d = time.Minute
		}
		vp.SetRelative(d)
		t.SetVP(vp)
	}
	segs := t.Segment(ud)
	if len(segs) > MaxParts {
		return nil, fmt.Errorf("%w: %d parts in %s, at most %d", ErrTooLong, len(segs), alpha, MaxParts)
	}
	if len(segs) > 1 {
		ref, err := nextRef(o.Refs, da.Number())
		if err != nil {
			return nil, err
		}
		for i := range segs {
			// Segment put its default reference into the concat IE; the
			// IE's data is a fresh slice per part.
			segs[i].UDH[len(segs[i].UDH)-1].Data[0] = ref
		}
	}
	out := make([]PDU, len(segs))
	for i := range segs {
		tb, err := segs[i].MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("sms: encode part %d of %d: %w", i+1, len(segs), err)
		}
		out[i] = PDU{Hex: strings.ToUpper(hex.EncodeToString(append(append([]byte(nil), smsc...), tb...))), Length: len(tb)}
	}
	return out, nil
}

func nextRef(src RefSource, to string) (byte, error) {
	if src == nil {
		return randomRef()
	}
	ref, err := src.NextRef(to)
	if err != nil {
		return 0, fmt.Errorf("sms: concatenation reference for %s: %w", to, err)
	}
	return ref, nil
}

// Address parses a phone number for TP-DA: "+<digits>" is international
// (TON/NPI 0x91); digits without "+" (national numbers and short codes
// such as the operator's "5432145") are type "unknown" (0x81), which
// leaves their interpretation to the SMSC as TS 23.040 intends. Spaces,
// dashes and dots are dropped.
func Address(number string) (tpdu.Address, error) {
	n := strings.NewReplacer(" ", "", "-", "", ".", "", "\t", "").Replace(strings.TrimSpace(number))
	intl := strings.HasPrefix(n, "+")
	digits := strings.TrimPrefix(n, "+")
	if digits == "" || len(digits) > 20 || strings.Trim(digits, "0123456789*#") != "" || intl && strings.Trim(digits, "0123456789") != "" {
		return tpdu.Address{}, fmt.Errorf("%w %q: want +<country code><number> or a national number, at most 20 digits", ErrInvalidNumber, number)
	}
	a := tpdu.Address{TOA: 0x81, Addr: digits}
	if intl {
		a.TOA = 0x91
	}
	return a, nil
}

// smscField codes the PDU's SMSC field; "" is the empty field "00".
func smscField(number string) ([]byte, error) {
	if strings.TrimSpace(number) == "" {
		return []byte{0}, nil
	}
	a, err := Address(number)
	if err != nil {
		return nil, fmt.Errorf("SMSC: %w", err)
	}
	b, err := (&pdumode.SMSCAddress{Address: a}).MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("SMSC %q: %w", number, err)
	}
	return b, nil
}
