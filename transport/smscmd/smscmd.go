// Package smscmd is the wire format of signed SMS commands and their
// replies: one line of text that fits a single GSM 7-bit SMS (160
// characters), so a gateway whose data path is down can still be asked
// for its status or told to recover, through the operator's SMS service.
//
//	#CA1 C1733350000123 recover reattach 4f0c9a1be2d37a8c55e0b6f1
//	#CA1 R1733350000123 recover ok queued 9e1f0b7d2a64c3e8115ad0f7
//
// Fields are separated by one space: the tag `#CA1` (format version 1),
// the kind (`C` a command to a device, `R` a device's reply) glued to a
// decimal counter, the verb, its arguments, and the first 12 bytes of
// HMAC-SHA256 in lower-case hex. The MAC covers the kind, so a reply can
// never pass as a command, and the device's ICCID, so a command signed for
// one SIM does not run on another even where keys were shared by mistake.
// The counter is the replay guard: a device accepts a command only with a
// counter above the last one it accepted (the agent keeps it in its
// store); a reply carries the counter of the command it answers.
//
// Every character used is in the GSM 7-bit default alphabet, and nothing
// here looks at anything but the text, so the package is pure: parse,
// sign, verify.
package smscmd

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Tag starts every command and reply.
const Tag = "#CA1"

// MaxLen is one GSM 7-bit SMS without concatenation.
const MaxLen = 160

// MACLen is the truncated MAC in bytes (96 bits; RFC 2104 §5 allows
// truncation to half the hash and no less than 80 bits).
const MACLen = 12

// Key sizes in bytes: RFC 2104 §3 recommends at least the hash output
// length; a shorter key is refused rather than quietly weak.
const (
	MinKey = 32
	MaxKey = 64
)

// Kind says which way a message goes.
type Kind byte

// The kinds.
const (
	Command Kind = 'C'
	Reply   Kind = 'R'
)

// The commands a device knows and how many arguments each takes.
var verbs = map[string]int{
	"status":         0,
	"ping":           0,
	"mqtt-reconnect": 0,
	"recover":        1,
}

// maxReplyArgs bounds a reply's fields; MaxLen bounds them anyway, this
// keeps a hostile text from costing a large slice.
const maxReplyArgs = 24

// Errors, matched with errors.Is. None of their messages repeats the
// text, which may come from anyone.
var (
	ErrNotCommand = errors.New("smscmd: not a command (no " + Tag + " tag)")
	ErrTooLong    = fmt.Errorf("smscmd: longer than %d characters", MaxLen)
	ErrMalformed  = errors.New("smscmd: malformed")
	ErrBadMAC     = errors.New("smscmd: signature does not verify")
	ErrKey        = errors.New("smscmd: unusable key")
)

// Message is a command or a reply.
type Message struct {
	Kind    Kind
	Counter uint64
	Verb    string
	Args    []string
}

// LooksLike says whether text is meant as a command or reply (it starts
// with the tag), whether or not it is valid: such a text never goes the
// way of an ordinary SMS.
func LooksLike(text string) bool {
	return strings.HasPrefix(text, Tag)
}

// ParseKey decodes a key as written in a key file: hex, MinKey to MaxKey
// bytes, surrounding white space ignored.
func ParseKey(s string) ([]byte, error) {
	k, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("%w: not hex", ErrKey)
	}
	if len(k) < MinKey || len(k) > MaxKey {
		return nil, fmt.Errorf("%w: %d bytes, want %d to %d", ErrKey, len(k), MinKey, MaxKey)
	}
	return k, nil
}

// Sign encodes m for the SIM iccid and appends its MAC. It fails when m
// is not valid or would not fit one SMS.
func Sign(key []byte, iccid string, m Message) (string, error) {
	if len(key) < MinKey || len(key) > MaxKey {
		return "", fmt.Errorf("%w: %d bytes", ErrKey, len(key))
	}
	if err := m.check(); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %c%d %s", Tag, m.Kind, m.Counter, m.Verb)
	for _, a := range m.Args {
		b.WriteString(" " + a)
	}
	body := b.String()
	text := body + " " + hex.EncodeToString(mac(key, iccid, body))
	if len(text) > MaxLen {
		return "", fmt.Errorf("%w: %d characters", ErrTooLong, len(text))
	}
	return text, nil
}

// Verify parses text and checks its MAC for the SIM iccid with key. Only
// a nil error means the message came from a holder of the key; whether
// it is fresh (its counter) is the caller's to check.
func Verify(key []byte, iccid, text string) (Message, error) {
	if len(key) < MinKey || len(key) > MaxKey {
		return Message{}, fmt.Errorf("%w: %d bytes", ErrKey, len(key))
	}
	m, body, sum, err := parse(text)
	if err != nil {
		return Message{}, err
	}
	if !hmac.Equal(sum, mac(key, iccid, body)) {
		return Message{}, ErrBadMAC
	}
	return m, nil
}

func mac(key []byte, iccid, body string) []byte {
	h := hmac.New(sha256.New, key)
	// NUL cannot occur in either field, so the two cannot be shifted
	// into each other.
	h.Write([]byte("cellagent-smscmd-v1\x00" + iccid + "\x00" + body))
	return h.Sum(nil)[:MACLen]
}

func parse(text string) (m Message, body string, sum []byte, err error) {
	if !LooksLike(text) {
		return m, "", nil, ErrNotCommand
	}
	if len(text) > MaxLen {
		return m, "", nil, ErrTooLong
	}
	fields := strings.Split(text, " ")
	// tag, kind+counter, verb, MAC at least.
	if len(fields) < 4 {
		return m, "", nil, fmt.Errorf("%w: %d fields", ErrMalformed, len(fields))
	}
	if fields[0] != Tag {
		return m, "", nil, fmt.Errorf("%w: unknown version tag", ErrMalformed)
	}
	kc := fields[1]
	if kc == "" {
		return m, "", nil, fmt.Errorf("%w: empty field", ErrMalformed)
	}
	m.Kind = Kind(kc[0])
	if m.Counter, err = parseCounter(kc[1:]); err != nil {
		return Message{}, "", nil, err
	}
	m.Verb = fields[2]
	if n := len(fields) - 4; n > 0 {
		m.Args = fields[3 : 3+n]
	}
	last := fields[len(fields)-1]
	sum, err = hex.DecodeString(last)
	if err != nil || len(sum) != MACLen || strings.ToLower(last) != last {
		return Message{}, "", nil, fmt.Errorf("%w: signature field", ErrMalformed)
	}
	if err := m.check(); err != nil {
		return Message{}, "", nil, err
	}
	return m, text[:len(text)-len(last)-1], sum, nil
}

// parseCounter takes a canonical decimal: no sign, no leading zero.
func parseCounter(s string) (uint64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%w: counter", ErrMalformed)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%w: counter", ErrMalformed)
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: counter out of range", ErrMalformed)
	}
	return n, nil
}

// check validates a message's fields for either direction.
func (m Message) check() error {
	if m.Counter == 0 {
		return fmt.Errorf("%w: counter must be positive", ErrMalformed)
	}
	want, known := verbs[m.Verb]
	switch m.Kind {
	case Command:
		if !known {
			return fmt.Errorf("%w: unknown command", ErrMalformed)
		}
		if len(m.Args) != want {
			return fmt.Errorf("%w: command %s takes %d argument(s), got %d", ErrMalformed, m.Verb, want, len(m.Args))
		}
	case Reply:
		if !known {
			return fmt.Errorf("%w: reply to an unknown command", ErrMalformed)
		}
		if len(m.Args) == 0 || len(m.Args) > maxReplyArgs {
			return fmt.Errorf("%w: reply needs 1 to %d fields", ErrMalformed, maxReplyArgs)
		}
	default:
		return fmt.Errorf("%w: kind must be C or R", ErrMalformed)
	}
	for _, a := range m.Args {
		if !Token(a) {
			return fmt.Errorf("%w: argument", ErrMalformed)
		}
	}
	return nil
}

// MaxToken is the longest argument or reply field.
const MaxToken = 40

// Token reports whether s may be an argument or a reply field: a
// non-empty run, at most MaxToken long, of characters every SMS centre
// carries in the GSM 7-bit default alphabet.
func Token(s string) bool {
	if s == "" || len(s) > MaxToken {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("=.,:/+_%-", c) >= 0:
		default:
			return false
		}
	}
	return true
}
