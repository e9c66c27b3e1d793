package sms

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Indication is a "+CMTI: <mem>,<index>" (a message stored) or
// "+CDSI: <mem>,<index>" (a status report stored).
type Indication struct {
	Mem   string
	Index int
}

// ParseCMTI parses "+CMTI: "SM",3". Read the message from the memory it
// names: a modem may store in another memory than the host prefers.
func ParseCMTI(line string) (Indication, error) { return parseStored(line, "+CMTI:") }

// ParseCDSI parses "+CDSI: "SM",0".
func ParseCDSI(line string) (Indication, error) { return parseStored(line, "+CDSI:") }

func parseStored(line, prefix string) (Indication, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), prefix)
	if !ok {
		return Indication{}, fmt.Errorf("sms: %q is not a %s line", line, prefix)
	}
	i := strings.LastIndexByte(rest, ',')
	if i < 0 {
		return Indication{}, fmt.Errorf("sms: %q: want <mem>,<index>", line)
	}
	mem := strings.Trim(strings.TrimSpace(rest[:i]), `"`)
	idx, err := strconv.Atoi(strings.TrimSpace(rest[i+1:]))
	if err != nil || idx < 0 || mem == "" {
		return Indication{}, fmt.Errorf("sms: %q: want <mem>,<index>", line)
	}
	return Indication{Mem: mem, Index: idx}, nil
}

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

// ParseCMGR parses the answer to AT+CMGR in PDU mode:
// "+CMGR: <stat>,[<alpha>],<length>" and the PDU line. No lines at all (a
// bare OK) is found == false. A malformed header is returned in err, but
// the PDU after it is still decoded and returned.
func ParseCMGR(lines []string) (e Entry, found bool, err error) {
	var body []string
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" {
			body = append(body, l)
		}
	}
	if len(body) == 0 {
		return Entry{}, false, nil
	}
	e = Entry{Stat: NoStat}
	h := body[0]
	if strings.HasPrefix(h, "+CMGR:") {
		if _, err = headerLength(h, "+CMGR:"); err == nil {
			f, _, _ := strings.Cut(strings.TrimPrefix(h, "+CMGR:"), ",")
			e.Stat = parseStat(f)
		}
		body = body[1:]
	} else {
		err = fmt.Errorf("sms: AT+CMGR: answer without a +CMGR header: %q", h)
	}
	if len(body) == 0 {
		e.Message = Message{PDU: h, Err: fmt.Errorf("sms: %q without its PDU line", h)}
		e.ID = hashID([]byte(h))
		return e, true, err
	}
	e.Message = DecodeHex(body[0])
	return e, true, err
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
