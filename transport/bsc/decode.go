package bsc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// decodeObject decodes one JSON object into T after checking the required
// fields (dotted paths for nested objects). secret suppresses the body
// excerpt in errors, for answers that may hold a token.
func decodeObject[T any](what string, body []byte, secret bool, required ...string) (*T, error) {
	derr := func(missing []string, err error) *DecodeError {
		e := &DecodeError{What: what, Missing: missing, Err: err}
		if !secret {
			e.Excerpt = excerpt(body)
		}
		return e
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, derr(nil, describeJSONError(err))
	}
	if missing := missingFields(raw, "", required); len(missing) > 0 {
		return nil, derr(missing, nil)
	}
	v := new(T)
	if err := json.Unmarshal(body, v); err != nil {
		return nil, derr(nil, describeJSONError(err))
	}
	return v, nil
}

// decodeList accepts a bare JSON array or an object holding the array under
// key, since list answers come in both shapes on this kind of API.
func decodeList[T any](what, key string, body []byte, required ...string) ([]T, error) {
	derr := func(missing []string, err error) *DecodeError {
		return &DecodeError{What: what, Missing: missing, Err: err, Excerpt: excerpt(body)}
	}
	trimmed := bytes.TrimSpace(body)
	items := json.RawMessage(trimmed)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var wrapper map[string]json.RawMessage
		if err := json.Unmarshal(trimmed, &wrapper); err != nil {
			return nil, derr(nil, describeJSONError(err))
		}
		var ok bool
		if items, ok = wrapper[key]; !ok {
			return nil, derr([]string{key}, nil)
		}
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(items, &raws); err != nil {
		return nil, derr(nil, describeJSONError(err))
	}
	out := make([]T, 0, len(raws))
	var missing []string
	for i, r := range raws {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(r, &obj); err != nil {
			return nil, derr(nil, fmt.Errorf("%s[%d]: %w", key, i, describeJSONError(err)))
		}
		missing = append(missing, missingFields(obj, fmt.Sprintf("%s[%d].", key, i), required)...)
		var v T
		if err := json.Unmarshal(r, &v); err != nil {
			return nil, derr(nil, fmt.Errorf("%s[%d]: %w", key, i, describeJSONError(err)))
		}
		out = append(out, v)
	}
	if len(missing) > 0 {
		return nil, derr(missing, nil)
	}
	return out, nil
}

func missingFields(obj map[string]json.RawMessage, prefix string, required []string) []string {
	var missing []string
	for _, path := range required {
		head, rest, nested := strings.Cut(path, ".")
		v, ok := obj[head]
		if !ok || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			missing = append(missing, prefix+path)
			continue
		}
		if !nested {
			continue
		}
		var sub map[string]json.RawMessage
		if err := json.Unmarshal(v, &sub); err != nil {
			missing = append(missing, prefix+path)
			continue
		}
		missing = append(missing, missingFields(sub, prefix+head+".", []string{rest})...)
	}
	return missing
}

// describeJSONError turns encoding/json errors into messages that name the
// field and position, which is what an operator needs from a bad answer.
func describeJSONError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("malformed JSON at byte %d: %w", syn.Offset, err)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Errorf("want a JSON object, got JSON %s", typ.Value)
		}
		return fmt.Errorf("field %s: want %s, got JSON %s", typ.Field, typ.Type, typ.Value)
	}
	return err
}

func decodeToken(b []byte) (*tokenAnswer, error) {
	t, err := decodeObject[tokenAnswer]("token", b, true, "access_token", "token_type", "expires_in")
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(t.TokenType, "bearer") {
		return nil, &DecodeError{What: "token", Err: fmt.Errorf("token_type %q, want bearer", excerpt([]byte(t.TokenType)))}
	}
	if t.AccessToken == "" || t.ExpiresIn <= 0 {
		return nil, &DecodeError{What: "token", Err: fmt.Errorf("empty access_token or non-positive expires_in (%d)", t.ExpiresIn)}
	}
	return t, nil
}

func decodeSIM(b []byte) (*SIM, error) {
	return decodeObject[SIM]("SIM", b, false, "iccid", "status")
}

func decodeSIMList(b []byte) ([]SIM, error) {
	return decodeList[SIM]("SIM list", "sims", b, "iccid", "status")
}

func decodeConnectivity(b []byte) (*ConnectivityInfo, error) {
	return decodeObject[ConnectivityInfo]("connectivity info", b, false, "status")
}

func decodeEvents(b []byte) ([]Event, error) {
	return decodeList[Event]("events", "events", b, "timestamp", "type")
}

func decodeQuota(what string, b []byte) (*Quota, error) {
	q, err := decodeObject[Quota](what, b, false, "total", "remaining", "unit")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrQuotaUnavailable, err)
	}
	return q, nil
}

func decodeUsage(b []byte) (*Usage, error) {
	return decodeObject[Usage]("usage", b, false, "data.total_bytes")
}

// decodeReset and decodeSMSAccepted accept an empty body: the operator only
// promises a success status (OPERATOR.md §2) for these calls.
func decodeReset(b []byte) (*ResetQueued, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return &ResetQueued{Status: "QUEUED"}, nil
	}
	return decodeObject[ResetQueued]("reset", b, false)
}

func decodeSMSAccepted(b []byte) (*SMSAccepted, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return &SMSAccepted{}, nil
	}
	return decodeObject[SMSAccepted]("SMS", b, false)
}
