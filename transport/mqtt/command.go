package mqtt

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Limits of command payloads. An SMS is held to ten concatenated parts:
// 10×153 GSM 7-bit characters, or 10×134 bytes of 8-bit data; the modem
// layer may refuse a text that needs UCS-2 and more parts.
const (
	DefaultMaxCommandPayload = 4096
	MaxSMSText               = 1530 // characters
	MaxSMSData               = 1340 // bytes
)

// Command is a validated command request.
type Command struct {
	Name    string
	ID      string    // the requester's id, echoed in the result
	Expires time.Time // zero: never; a command still queued past it is refused
	SMS     SMSRequest
	Step    string // recover
}

// SMSRequest is the sms/send request, and the agent's MO request as its
// outbox stores it (hence the JSON names). ID is the command id and makes
// a redelivered command idempotent.
type SMSRequest struct {
	ID     string `json:"id,omitempty"`
	To     string `json:"to"`
	Text   string `json:"text,omitempty"`
	Data   []byte `json:"data,omitempty"`
	Report bool   `json:"report,omitempty"`
}

// CommandError is a refused command. ID is set when the payload got far
// enough to name one, so the error result can be matched.
type CommandError struct {
	ID     string
	Reason string
}

func (e *CommandError) Error() string { return "command refused: " + e.Reason }

// commandFields are the keys each command accepts; any other key is an
// error, so a typo ("txt") is not silently an empty message.
var commandFields = map[string]map[string]bool{
	CmdSMSSend: {"id": true, "exp": true, "to": true, "text": true, "hex": true, "report": true},
	CmdStatus:  {"id": true, "exp": true},
	CmdRecover: {"id": true, "exp": true, "step": true},
}

// ParseCommand validates the payload of cmd/<name>: one flat JSON object
// of at most maxSize bytes (DefaultMaxCommandPayload if ≤ 0), valid
// UTF-8, only the command's keys, each once, with scalar values of the
// right type, and nothing after it. Every failure is a *CommandError.
//
//	sms/send {"id","to","text"|"hex","report"?,"exp"?}
//	status   {"id","exp"?}
//	recover  {"id","step","exp"?}
func ParseCommand(name string, payload []byte, maxSize int) (Command, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxCommandPayload
	}
	fail := func(id, format string, a ...any) (Command, error) {
		return Command{}, &CommandError{ID: id, Reason: fmt.Sprintf(format, a...)}
	}
	allowed, ok := commandFields[name]
	if !ok {
		return fail("", "unknown command %q", name)
	}
	if len(payload) > maxSize {
		return fail("", "payload of %d bytes exceeds %d", len(payload), maxSize)
	}
	if !utf8.Valid(payload) {
		return fail("", "payload is not valid UTF-8")
	}
	fields, err := flatObject(payload, allowed)
	// The id is read even from a payload with other faults, so the
	// error result can name the request it answers.
	id, _ := fields["id"].(string)
	if ValidateLevel(id) != nil {
		id = ""
	}
	if err != nil {
		return fail(id, "%v", err)
	}
	// encoding/json turns an unpaired surrogate escape into U+FFFD: the
	// SMS would carry a character nobody wrote.
	if at := loneSurrogate(payload); at >= 0 {
		return fail(id, "lone UTF-16 surrogate escape at byte %d (\\uD800-\\uDFFF must come in high-low pairs)", at)
	}
	cmd := Command{Name: name}
	if cmd.ID, err = str(fields, "id", true); err != nil {
		return fail(id, "%v", err)
	}
	if err := ValidateLevel(cmd.ID); err != nil {
		return fail("", "id: %v", err)
	}
	if v, ok := fields["exp"]; ok {
		n, isNum := v.(json.Number)
		sec, err := n.Int64()
		if !isNum || err != nil || sec <= 0 || sec > 1<<40 {
			return fail(id, "exp must be a positive integer of unix seconds")
		}
		cmd.Expires = time.Unix(sec, 0)
	}
	switch name {
	case CmdSMSSend:
		if cmd.SMS, err = smsRequest(fields); err != nil {
			return fail(id, "%v", err)
		}
		cmd.SMS.ID = cmd.ID
	case CmdRecover:
		if cmd.Step, err = str(fields, "step", true); err != nil {
			return fail(id, "%v", err)
		}
		if !validStep(cmd.Step) {
			return fail(id, "step %q: want 1-32 of a-z 0-9 -", cmd.Step)
		}
	}
	return cmd, nil
}

// loneSurrogate returns the offset of the first \\u escape in payload that
// is a UTF-16 surrogate not part of a high-low pair, or -1. It scans the
// raw text since the decoder hides them; outside strings a backslash is
// a JSON error found elsewhere.
func loneSurrogate(payload []byte) int {
	esc := func(i int) (rune, bool) {
		if i+6 > len(payload) || payload[i] != '\\' || payload[i+1] != 'u' {
			return 0, false
		}
		n, err := strconv.ParseUint(string(payload[i+2:i+6]), 16, 16)
		return rune(n), err == nil
	}
	for i := 0; i < len(payload); i++ {
		if payload[i] != '\\' {
			continue
		}
		r, ok := esc(i)
		if !ok {
			i++ // an escaped character, perhaps a backslash
			continue
		}
		switch {
		case utf16.IsSurrogate(r) && r < 0xDC00:
			low, ok := esc(i + 6)
			if !ok || low < 0xDC00 || low > 0xDFFF {
				return i
			}
			i += 11
		case utf16.IsSurrogate(r):
			return i
		default:
			i += 5
		}
	}
	return -1
}

// flatObject reads one JSON object whose values are strings, numbers or
// booleans. encoding/json alone would take the last of duplicate keys
// and ignore trailing data; both hide a malformed request.
func flatObject(payload []byte, allowed map[string]bool) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	out := map[string]any{}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return out, errors.New("payload must be a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return out, fmt.Errorf("malformed JSON: %v", err)
		}
		key := tok.(string) // object keys are always strings
		if !allowed[key] {
			return out, fmt.Errorf("unknown field %q", key)
		}
		if _, dup := out[key]; dup {
			return out, fmt.Errorf("duplicate field %q", key)
		}
		val, err := dec.Token()
		if err != nil {
			return out, fmt.Errorf("malformed JSON: %v", err)
		}
		switch val.(type) {
		case string, json.Number, bool:
			out[key] = val
		default:
			return out, fmt.Errorf("field %q: want a string, number or boolean", key)
		}
	}
	if _, err := dec.Token(); err != nil {
		return out, fmt.Errorf("malformed JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return out, errors.New("data after the JSON object")
	}
	return out, nil
}

func str(fields map[string]any, key string, required bool) (string, error) {
	v, ok := fields[key]
	if !ok {
		if required {
			return "", fmt.Errorf("missing field %q", key)
		}
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("field %q must be a string", key)
	}
	return s, nil
}

func smsRequest(fields map[string]any) (SMSRequest, error) {
	var r SMSRequest
	var err error
	if r.To, err = str(fields, "to", true); err != nil {
		return r, err
	}
	if !validNumber(r.To) {
		return r, fmt.Errorf("to %q: want an optional + and 3-20 digits", r.To)
	}
	if v, ok := fields["report"]; ok {
		if r.Report, ok = v.(bool); !ok {
			return r, errors.New(`field "report" must be a boolean`)
		}
	}
	text, err := str(fields, "text", false)
	if err != nil {
		return r, err
	}
	hexData, err := str(fields, "hex", false)
	if err != nil {
		return r, err
	}
	_, hasText := fields["text"]
	_, hasHex := fields["hex"]
	switch {
	case hasText == hasHex:
		return r, errors.New(`exactly one of "text" and "hex" is required`)
	case hasText:
		n := utf8.RuneCountInString(text)
		if n == 0 || n > MaxSMSText {
			return r, fmt.Errorf("text: %d characters, want 1-%d", n, MaxSMSText)
		}
		if i := strings.IndexFunc(text, func(c rune) bool { return unicode.IsControl(c) && c != '\n' && c != '\r' }); i >= 0 {
			return r, fmt.Errorf("text: control character at byte %d", i)
		}
		r.Text = text
	default:
		if r.Data, err = hex.DecodeString(hexData); err != nil {
			return r, fmt.Errorf("hex: %v", err)
		}
		if len(r.Data) == 0 || len(r.Data) > MaxSMSData {
			return r, fmt.Errorf("hex: %d bytes, want 1-%d", len(r.Data), MaxSMSData)
		}
	}
	return r, nil
}

func validNumber(s string) bool {
	digits := strings.TrimPrefix(s, "+")
	if len(digits) < 3 || len(digits) > 20 {
		return false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func validStep(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
