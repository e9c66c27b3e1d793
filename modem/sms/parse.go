package sms

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ParseCMT decodes a "+CMT: [<alpha>],<length>" URC and its PDU line, as
// the AT engine hands them to a handler. The result always carries what
// arrived: a malformed header or PDU sets Err, it does not lose the PDU.
func ParseCMT(lines []string) Message { return parseDirect(lines, "+CMT:") }

// ParseCDS decodes a "+CDS: <length>" URC and its SMS-STATUS-REPORT line.
func ParseCDS(lines []string) Message { return parseDirect(lines, "+CDS:") }

func parseDirect(lines []string, prefix string) Message {
	if len(lines) < 2 {
		joined := strings.Join(lines, "\n")
		m := Message{PDU: joined, Err: fmt.Errorf("sms: %s without its PDU line", prefix)}
		m.ID = hashID([]byte(joined))
		return m
	}
	m := DecodeHex(lines[1])
	if _, err := headerLength(lines[0], prefix); err != nil && m.Err == nil {
		m.Err = err
		m.ID = ID(m)
	}
	return m
}

// headerLength reads the <length> at the end of a +CMT/+CDS/+CMGR/+CMGL
// header. The PDU delimits itself, so the length only has to be a number.
func headerLength(line, prefix string) (int, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), prefix)
	if !ok {
		return 0, fmt.Errorf("sms: %q is not a %s line", line, prefix)
	}
	f := rest
	if i := strings.LastIndexByte(rest, ','); i >= 0 {
		f = rest[i+1:]
	}
	n, err := strconv.Atoi(strings.TrimSpace(f))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("sms: %q: bad <length>", line)
	}
	return n, nil
}

// ParseCMGL parses the answer to AT+CMGL in PDU mode: pairs of
// "+CMGL: <index>,<stat>,[<alpha>],<length>" and the PDU line. Nothing is
// dropped: a PDU that does not decode is kept with Err, a header without
// its PDU line is an entry with Err, and a PDU line after a malformed
// header (or none) is an entry with Index -1, which must not be deleted
// by index. Such shape faults are also returned, joined, in err, next to
// the entries.
func ParseCMGL(lines []string) (entries []Entry, err error) {
	var errs []error
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if l == "" {
			continue
		}
		e := Entry{Index: -1, Stat: NoStat}
		isHeader := strings.HasPrefix(l, "+CMGL:")
		if isHeader {
			if err := parseCMGLHeader(l, &e); err != nil {
				errs = append(errs, err)
			}
			if i+1 >= len(lines) || strings.HasPrefix(strings.TrimSpace(lines[i+1]), "+CMGL:") {
				e.Message = Message{PDU: l, Err: fmt.Errorf("sms: %q without its PDU line", l)}
				e.ID = hashID([]byte(l))
				entries = append(entries, e)
				continue
			}
			i++
		} else {
			errs = append(errs, fmt.Errorf("sms: +CMGL: PDU line %q without its header", l))
		}
		e.Message = DecodeHex(lines[i])
		entries = append(entries, e)
	}
	return entries, errors.Join(errs...)
}

func parseCMGLHeader(l string, e *Entry) error {
	f := strings.Split(strings.TrimPrefix(l, "+CMGL:"), ",")
	idx, err := strconv.Atoi(strings.TrimSpace(f[0]))
	if err != nil || idx < 0 || len(f) < 3 {
		return fmt.Errorf("sms: bad +CMGL header %q", l)
	}
	if _, err := headerLength(l, "+CMGL:"); err != nil {
		return err
	}
	e.Index, e.Stat = idx, parseStat(f[1])
	return nil
}

// parseStat reads <stat>; an empty or odd field is NoStat rather than a
// failure, because the PDU still decodes.
func parseStat(s string) Stat {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n > 3 {
		return NoStat
	}
	return Stat(n)
}
