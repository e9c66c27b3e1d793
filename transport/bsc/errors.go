package bsc

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors a caller can branch on with errors.Is. The wrapping error
// always says which call failed and why.
var (
	// ErrUnauthorized: the platform refused the credentials (its "Auth
	// Error"), refused a fresh token, or the account has no API access —
	// only portal administrators have API access.
	ErrUnauthorized = errors.New("bsc: unauthorized")
	// ErrNotFound: the platform does not know this SIM (or resource).
	ErrNotFound = errors.New("bsc: not found")
	// ErrQuotaUnavailable: the platform gave no usable quota for the SIM, so
	// no decision may be based on quota right now.
	ErrQuotaUnavailable = errors.New("bsc: quota unavailable")
	// ErrInvalidICCID: the ICCID was rejected locally, before any call.
	ErrInvalidICCID = errors.New("bsc: invalid ICCID")
)

// ThrottledError is returned when the platform answered 429 and waiting as
// long as it asked is beyond the client's policy (or attempts ran out).
// RetryAfter is zero when the platform gave no usable Retry-After.
type ThrottledError struct {
	Method, Path string
	RetryAfter   time.Duration
}

func (e *ThrottledError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("bsc: %s %s: throttled by the platform (429), retry after %s", e.Method, e.Path, e.RetryAfter)
	}
	return fmt.Sprintf("bsc: %s %s: throttled by the platform (429)", e.Method, e.Path)
}

// APIError is any other non-2xx answer. Body is a short excerpt, enough to
// diagnose without flooding logs.
type APIError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *APIError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("bsc: %s %s: HTTP %d", e.Method, e.Path, e.Status)
	}
	return fmt.Sprintf("bsc: %s %s: HTTP %d: %s", e.Method, e.Path, e.Status, e.Body)
}

// DecodeError reports an answer that could not be used: malformed JSON, a
// field of the wrong type, or required fields missing (named in Missing).
type DecodeError struct {
	What    string   // e.g. "SIM", "data quota"
	Missing []string // dotted paths of required fields that were absent or null
	Excerpt string   // start of the body; empty for answers that may carry secrets
	Err     error
}

func (e *DecodeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "bsc: bad %s answer", e.What)
	if len(e.Missing) > 0 {
		fmt.Fprintf(&b, ": missing required field(s) %s", strings.Join(e.Missing, ", "))
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.Excerpt != "" {
		fmt.Fprintf(&b, " (body starts %q)", e.Excerpt)
	}
	return b.String()
}

func (e *DecodeError) Unwrap() error { return e.Err }

const excerptLen = 120

// excerpt keeps error messages and logs short and single-line.
func excerpt(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > excerptLen {
		s = s[:excerptLen] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
