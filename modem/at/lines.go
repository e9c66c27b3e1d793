package at

import "strings"

// MaxLineLength bounds one line from the modem. The longest legitimate line
// is a PDU (176 TPDU octets plus a 12-octet SMSC field, hex encoded); a
// babbling modem must not grow the buffer without limit.
const MaxLineLength = 4096

type tokenKind int

const (
	tokLine tokenKind = iota
	tokPrompt
)

type token struct {
	kind tokenKind
	line string
}

// splitter turns the byte stream into lines and SMS prompts. It is fed
// whatever the port returns, in pieces of any size, because a serial read
// ends wherever the UART's buffer happened to be.
//
// Lines end at CR or LF; empty lines vanish. The prompt '>' (optionally
// followed by one space, and never by a line ending) is only recognised at
// the start of a line, where no response line can begin with it.
type splitter struct {
	buf       []byte
	overflow  bool
	skipSpace bool
	// dropped counts lines cut because they exceeded MaxLineLength.
	dropped int
}

func (s *splitter) feed(p []byte, emit func(token)) {
	for _, b := range p {
		if s.skipSpace {
			s.skipSpace = false
			if b == ' ' {
				continue
			}
		}
		switch {
		case b == '\r' || b == '\n':
			s.flush(emit)
		case b == '>' && len(s.buf) == 0 && !s.overflow:
			emit(token{kind: tokPrompt})
			s.skipSpace = true
		case len(s.buf) >= MaxLineLength:
			s.overflow = true
		default:
			s.buf = append(s.buf, b)
		}
	}
}

func (s *splitter) flush(emit func(token)) {
	if s.overflow {
		s.dropped++
		s.overflow = false
		s.buf = s.buf[:0]
		return
	}
	line := cleanLine(s.buf)
	s.buf = s.buf[:0]
	if line != "" {
		emit(token{kind: tokLine, line: line})
	}
}

// cleanLine trims blanks and control characters from both ends. Some
// firmware indents responses (" +CSQ: 28,0"), and an echoed SMS body ends
// in Ctrl-Z.
func cleanLine(b []byte) string {
	start, end := 0, len(b)
	for start < end && (b[start] <= ' ' || b[start] == 0x7f) {
		start++
	}
	for end > start && (b[end-1] <= ' ' || b[end-1] == 0x7f) {
		end--
	}
	return strings.ToValidUTF8(string(b[start:end]), "\uFFFD")
}
