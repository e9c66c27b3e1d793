package receiver

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"cellagent/transport/bsc"
)

// ErrBadForward is what every decoding error wraps: the body is not one
// the platform's forwarder sends. Its messages name the field, never the
// payload.
var ErrBadForward = errors.New("receiver: not a valid forward")

// The forwarder's date format (GMT), as ../OPERATOR.md §4 records it.
const forwarderTime = "2006-01-02 15:04:05"

// Data coding schemes the forwarder uses.
const (
	DCSGSM7 = 0
	DCS8Bit = 4
)

// maxParts bounds a concatenated message: the UDH counts parts in one
// octet.
const maxParts = 255

// MO is an MO SMS forward (the platform's POST), one part of a message.
type MO struct {
	ID            int64         `json:"id"`
	Payload       string        `json:"payload"`
	SubmitDate    string        `json:"submit_date"`
	DestAddress   string        `json:"dest_address"`
	SourceAddress string        `json:"source_address"`
	DCS           int           `json:"dcs"`
	PID           int           `json:"pid"`
	Endpoint      Endpoint      `json:"endpoint"`
	Organisation  *Organisation `json:"organisation,omitempty"`
	MultiPartInfo *MultiPart    `json:"multi_part_info,omitempty"`
}

// Endpoint is the SIM: Name is its ICCID.
type Endpoint struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// Organisation is the platform account.
type Organisation struct {
	ID int64 `json:"id"`
}

// MultiPart places a part in its message (1-based).
type MultiPart struct {
	PartNo     int   `json:"partno"`
	Total      int   `json:"total"`
	Identifier int64 `json:"identifier"`
}

// DLR is a delivery report (the platform's PATCH) for an MT SMS.
type DLR struct {
	ID           int64         `json:"id"`
	FinalDate    string        `json:"final_date"`
	SubmitDate   string        `json:"submit_date"`
	Organisation *Organisation `json:"organisation,omitempty"`
	Endpoint     Endpoint      `json:"endpoint"`
	Status       DLRStatus     `json:"status"`
}

// DLRStatus is the report's outcome, e.g. DELIVERED.
type DLRStatus struct {
	ID     int    `json:"id"`
	Status string `json:"status"`
}

// strict decodes exactly one JSON object with no unknown fields.
func strict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadForward, jsonProblem(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: data after the JSON object", ErrBadForward)
	}
	return nil
}

// jsonProblem keeps the decoder's description of what is wrong but not
// the input it quotes.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at offset %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %s: wrong type %s", te.Field, te.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated"
	}
	return "invalid JSON object"
}

// DecodeMO decodes and checks an MO forward.
func DecodeMO(body []byte) (MO, error) {
	var m MO
	if err := strict(body, &m); err != nil {
		return MO{}, err
	}
	if m.ID <= 0 {
		return MO{}, fmt.Errorf("%w: id must be positive", ErrBadForward)
	}
	if err := bsc.ValidateICCID(m.Endpoint.Name); err != nil {
		return MO{}, fmt.Errorf("%w: endpoint.name is not an ICCID", ErrBadForward)
	}
	if _, err := time.Parse(forwarderTime, m.SubmitDate); err != nil {
		return MO{}, fmt.Errorf("%w: submit_date", ErrBadForward)
	}
	if !address(m.SourceAddress) || !address(m.DestAddress) {
		return MO{}, fmt.Errorf("%w: source_address or dest_address", ErrBadForward)
	}
	switch m.DCS {
	case DCSGSM7:
		if !utf8.ValidString(m.Payload) {
			return MO{}, fmt.Errorf("%w: payload is not UTF-8", ErrBadForward)
		}
	case DCS8Bit:
		if _, err := hex.DecodeString(m.Payload); err != nil {
			return MO{}, fmt.Errorf("%w: dcs 4 payload is not hex", ErrBadForward)
		}
	default:
		return MO{}, fmt.Errorf("%w: dcs %d, want 0 or 4", ErrBadForward, m.DCS)
	}
	if p := m.MultiPartInfo; p != nil {
		if p.Total < 1 || p.Total > maxParts || p.PartNo < 1 || p.PartNo > p.Total || p.Identifier < 0 {
			return MO{}, fmt.Errorf("%w: multi_part_info part %d of %d", ErrBadForward, p.PartNo, p.Total)
		}
	}
	return m, nil
}

// address is a phone number or an alphanumeric sender (3GPP TS 23.040
// §9.1.2.5 allows 11 characters; numbers have up to 20 digits): printable
// ASCII only, so it cannot carry terminal control sequences to whoever
// reads the output.
func address(s string) bool {
	if len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// DecodeDLR decodes and checks a delivery report.
func DecodeDLR(body []byte) (DLR, error) {
	var d DLR
	if err := strict(body, &d); err != nil {
		return DLR{}, err
	}
	if d.ID <= 0 {
		return DLR{}, fmt.Errorf("%w: id must be positive", ErrBadForward)
	}
	if err := bsc.ValidateICCID(d.Endpoint.Name); err != nil {
		return DLR{}, fmt.Errorf("%w: endpoint.name is not an ICCID", ErrBadForward)
	}
	if d.Status.Status == "" || len(d.Status.Status) > 32 {
		return DLR{}, fmt.Errorf("%w: status.status", ErrBadForward)
	}
	for _, r := range d.Status.Status {
		if (r < 'A' || r > 'Z') && r != '_' {
			return DLR{}, fmt.Errorf("%w: status.status", ErrBadForward)
		}
	}
	for _, t := range []string{d.FinalDate, d.SubmitDate} {
		if _, err := time.Parse(forwarderTime, t); err != nil {
			return DLR{}, fmt.Errorf("%w: final_date or submit_date", ErrBadForward)
		}
	}
	return d, nil
}
