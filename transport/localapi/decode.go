package localapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
)

// Bounds on what a request may carry. An SMS of 255 UCS-2 parts is
// about 17000 characters; with base64 data and JSON escapes 64 KiB holds
// any message the modem can send.
const (
	MaxBody      = 64 << 10
	MaxKeyLen    = 128
	MaxCommand   = 512
	MaxTimeoutMS = 180000
)

// ErrBadRequest marks a request the client must change.
var ErrBadRequest = errors.New("bad request")

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}

// decodeStrict reads one JSON object into v: unknown fields, trailing
// data and a version other than 0 or 1 are refused, so a typo in a field
// name is an error rather than a silently different request.
func decodeStrict(body []byte, v any, version func() int) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bad("body: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("body: data after the JSON object")
	}
	if n := version(); n != 0 && n != V {
		return bad("v %d: this agent speaks version %d", n, V)
	}
	return nil
}

// DecodeSMSRequest parses and checks the body of POST /v1/sms. The
// number and the text are checked again, fully, by the outbox.
func DecodeSMSRequest(body []byte) (SMSRequest, error) {
	var r SMSRequest
	if err := decodeStrict(body, &r, func() int { return r.V }); err != nil {
		return r, err
	}
	r.To = strings.TrimSpace(r.To)
	switch {
	case r.To == "":
		return r, bad("to: required")
	case (r.Text == "") == (len(r.Data) == 0):
		return r, bad("give exactly one of text and data")
	case len(r.IdempotencyKey) > MaxKeyLen:
		return r, bad("idempotency_key: %d bytes, at most %d", len(r.IdempotencyKey), MaxKeyLen)
	}
	for _, c := range r.IdempotencyKey {
		if c > unicode.MaxASCII || !unicode.IsPrint(c) {
			return r, bad("idempotency_key: printable ASCII only")
		}
	}
	return r, nil
}

// DecodeATRequest parses and checks the body of POST /v1/at. Whether the
// command is allowed is the backend's decision; this refuses what could
// not be one command: line ends and control characters would let a
// client smuggle a second command or an SMS body past the engine.
func DecodeATRequest(body []byte) (ATRequest, error) {
	var r ATRequest
	if err := decodeStrict(body, &r, func() int { return r.V }); err != nil {
		return r, err
	}
	r.Command = strings.TrimSpace(r.Command)
	switch {
	case r.Command == "":
		return r, bad("command: required")
	case len(r.Command) > MaxCommand:
		return r, bad("command: %d bytes, at most %d", len(r.Command), MaxCommand)
	case !strings.HasPrefix(strings.ToUpper(r.Command), "AT"):
		return r, bad("command %q: must start with AT", r.Command)
	case r.TimeoutMS < 0 || r.TimeoutMS > MaxTimeoutMS:
		return r, bad("timeout_ms %d: want 0 to %d", r.TimeoutMS, MaxTimeoutMS)
	}
	for _, c := range r.Command {
		if c > unicode.MaxASCII || !unicode.IsPrint(c) {
			return r, bad("command: printable ASCII only, one command per request")
		}
	}
	return r, nil
}

// DecodeRecoverRequest parses the body of POST /v1/recover.
func DecodeRecoverRequest(body []byte) (RecoverRequest, error) {
	var r RecoverRequest
	if err := decodeStrict(body, &r, func() int { return r.V }); err != nil {
		return r, err
	}
	if r.Step == "" {
		return r, bad("step: required")
	}
	if len(r.Step) > 64 {
		return r, bad("step: too long")
	}
	return r, nil
}

// ParseCursor parses ?after= and ?limit= of the feed's readers.
func ParseCursor(after, limit string, maxLimit int) (uint64, int, error) {
	var a uint64
	if after != "" {
		var err error
		if a, err = strconv.ParseUint(after, 10, 64); err != nil {
			return 0, 0, bad("after %q: want the seq of the last record read", after)
		}
	}
	n := maxLimit
	if limit != "" {
		v, err := strconv.Atoi(limit)
		if err != nil || v <= 0 || v > maxLimit {
			return 0, 0, bad("limit %q: want 1 to %d", limit, maxLimit)
		}
		n = v
	}
	return a, n, nil
}

// ValidID says whether id can name an outbox message: the path of
// GET /v1/sms/{id}.
func ValidID(id string) error {
	if id == "" || len(id) > 255 {
		return bad("sms id: 1 to 255 bytes")
	}
	for _, c := range id {
		if c > unicode.MaxASCII || !unicode.IsPrint(c) {
			return bad("sms id: printable ASCII only")
		}
	}
	return nil
}
