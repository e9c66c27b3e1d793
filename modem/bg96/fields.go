package bg96

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseError reports an information line that does not have the shape its
// command promises. Line is what the modem printed, so the log shows the
// evidence rather than a paraphrase of it.
type ParseError struct {
	Line   string
	Reason string
}

func (e *ParseError) Error() string {
	line := e.Line
	const limit = 120
	if len(line) > limit {
		line = line[:limit] + "…"
	}
	return fmt.Sprintf("cannot parse %q: %s", line, e.Reason)
}

func parseErr(line, format string, args ...any) error {
	return &ParseError{Line: line, Reason: fmt.Sprintf(format, args...)}
}

// fields strips prefix (case-insensitive, e.g. "+CSQ:") from line and splits
// the rest at commas outside double quotes. Each field is trimmed of blanks
// and of its quotes: modules differ in both (" +CSQ: 28,0" on an M26, a
// quoted "0" AcT on a BG96), and none of our values is told apart by quoting.
func fields(line, prefix string) ([]string, error) {
	s := strings.TrimSpace(line)
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return nil, parseErr(line, "expected prefix %q", prefix)
	}
	s = strings.TrimSpace(s[len(prefix):])
	if s == "" {
		return nil, parseErr(line, "no value after %q", prefix)
	}
	var out []string
	var cur strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if quoted {
		return nil, parseErr(line, "unterminated quote")
	}
	return append(out, strings.TrimSpace(cur.String())), nil
}

// field returns f[i], or "" when the modem left it out.
func field(f []string, i int) string {
	if i < len(f) {
		return f[i]
	}
	return ""
}

// atoi parses a decimal field; name goes into the error.
func atoi(line, name, s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, parseErr(line, "%s %q is not a number", name, s)
	}
	return n, nil
}

// optInt parses an optional decimal field: empty means the modem did not
// say, which is unknown and not zero.
func optInt(line, name, s string) (*int, error) {
	if s == "" {
		return nil, nil
	}
	n, err := atoi(line, name, s)
	if err != nil {
		return nil, err
	}
	return &n, nil
}

// optHex parses an optional hexadecimal field of at most bits bits.
func optHex(line, name, s string, bits int) (*uint32, error) {
	if s == "" {
		return nil, nil
	}
	n, err := strconv.ParseUint(s, 16, 32)
	if err != nil || n >= 1<<bits {
		return nil, parseErr(line, "%s %q is not a hexadecimal number of at most %d bits", name, s, bits)
	}
	v := uint32(n)
	return &v, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func ptr[T any](v T) *T { return &v }
