// Package bg96 is the Quectel BG96 dialect on top of the AT engine: pure
// parsers for the answers the BG96 (and its BG95/EC2x cousins) print, typed
// queries, the start-up wait and the init script.
//
// Parsers never panic and name the offending line in their errors. A value
// the modem reports as unknown, or leaves out, is a nil pointer: telemetry
// must not show "99" or "0" where the truth is "don't know".
package bg96

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"cellagent/modem/at"
)

// Commander runs one AT command; *at.AT implements it.
type Commander interface {
	Command(ctx context.Context, cmd string, opts ...at.CommandOption) ([]string, error)
}

// Indicator delivers unsolicited result codes; *at.AT implements it.
type Indicator interface {
	AddIndication(prefix string, h at.Handler) (remove func())
}

// Modem issues typed BG96 queries over a Commander.
type Modem struct {
	c Commander
}

// New wraps c.
func New(c Commander) *Modem { return &Modem{c: c} }

// query runs cmd and parses its answer with parse: the information lines
// with prefix (any line when prefix is ""), tried from the last one back.
// The engine gives a command every line with its prefix, and a URC with the
// same prefix can slip in just before the answer: "+CREG: 0", printed as
// AT+CFUN=4 took effect, arriving while AT+CREG? waits for "+CREG: 2,0".
// The answer is the line right before the final result, so the last line
// that parses wins, and a stray extra line cannot turn into an error.
func query[T any](ctx context.Context, m *Modem, what, cmd, prefix string, parse func(string) (T, error)) (T, error) {
	var zero T
	lines, err := m.c.Command(ctx, cmd)
	if err != nil {
		return zero, fmt.Errorf("bg96: read %s: %w", what, err)
	}
	var cand []string
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l != "" && (prefix == "" || len(l) >= len(prefix) && strings.EqualFold(l[:len(prefix)], prefix)) {
			cand = append(cand, l)
		}
	}
	if len(cand) == 0 {
		if prefix == "" {
			return zero, fmt.Errorf("bg96: read %s: %s: no information line in the answer", what, cmd)
		}
		return zero, fmt.Errorf("bg96: read %s: %s: no %q line in the answer %q", what, cmd, prefix, lines)
	}
	var last error
	for i := len(cand) - 1; i >= 0; i-- {
		v, err := parse(cand[i])
		if err == nil {
			return v, nil
		}
		if last == nil {
			last = err
		}
	}
	return zero, fmt.Errorf("bg96: read %s: %w", what, last)
}

// Identity describes the modem and its SIM.
type Identity struct {
	IMEI     string `json:"imei,omitempty"`
	ICCID    string `json:"iccid,omitempty"`
	IMSI     string `json:"imsi,omitempty"`
	Firmware string `json:"firmware,omitempty"`
	Product
}

// recorder notes the failure of one named part of a composite query.
type recorder func(part string, err error)

// joined collects a recorder's failures into one error.
type joined []error

func (j *joined) record(_ string, err error) { *j = append(*j, err) }

func (m *Modem) identity(ctx context.Context, rec recorder) Identity {
	var id Identity
	var err error
	if id.IMEI, err = query(ctx, m, "IMEI", "AT+CGSN", "", ParseIMEI); err != nil {
		rec("imei", err)
	}
	if id.ICCID, err = query(ctx, m, "ICCID", "AT+QCCID", "+QCCID:", ParseQCCID); err != nil {
		rec("iccid", err)
	}
	if id.IMSI, err = query(ctx, m, "IMSI", "AT+CIMI", "", ParseIMSI); err != nil {
		rec("imsi", err)
	}
	// AT+QGMR adds the build to the revision; firmware that lacks it still
	// has the standard AT+CGMR.
	if id.Firmware, err = query(ctx, m, "firmware", "AT+QGMR", "", ParseFirmware); err != nil {
		fw, err2 := query(ctx, m, "firmware", "AT+CGMR", "", ParseFirmware)
		if err2 != nil {
			rec("firmware", errors.Join(err, err2))
		}
		id.Firmware = fw
	}
	lines, err := m.c.Command(ctx, "ATI")
	if err == nil {
		id.Product, err = ParseATI(lines)
	}
	if err != nil {
		rec("product", fmt.Errorf("bg96: read product: %w", err))
	}
	return id
}

// Identity reads IMEI, ICCID, IMSI, firmware and ATI. It returns what it
// could read, and the failures joined: without a SIM the IMEI is still
// worth having.
func (m *Modem) Identity(ctx context.Context) (Identity, error) {
	var errs joined
	id := m.identity(ctx, errs.record)
	return id, errors.Join(errs...)
}

// Signal combines the standard AT+CSQ with Quectel's per-RAT AT+QCSQ; nil
// is an answer that could not be read.
type Signal struct {
	CSQ  *CSQ  `json:"csq,omitempty"`
	QCSQ *QCSQ `json:"qcsq,omitempty"`
}

func (m *Modem) signal(ctx context.Context, rec recorder) Signal {
	var s Signal
	if v, err := query(ctx, m, "signal quality", "AT+CSQ", "+CSQ:", ParseCSQ); err != nil {
		rec("csq", err)
	} else {
		s.CSQ = &v
	}
	if v, err := query(ctx, m, "serving signal", "AT+QCSQ", "+QCSQ:", ParseQCSQ); err != nil {
		rec("qcsq", err)
	} else {
		s.QCSQ = &v
	}
	return s
}

// Signal reads AT+CSQ and AT+QCSQ, returning what it could and the
// failures joined.
func (m *Modem) Signal(ctx context.Context) (Signal, error) {
	var errs joined
	s := m.signal(ctx, errs.record)
	return s, errors.Join(errs...)
}

func (m *Modem) registration(ctx context.Context, rec recorder) Registration {
	var r Registration
	for _, d := range []struct {
		dom Domain
		dst **Reg
	}{{DomainCS, &r.CS}, {DomainGPRS, &r.GPRS}, {DomainEPS, &r.EPS}} {
		name := string(d.dom)
		v, err := query(ctx, m, name, "AT+"+name+"?", "+"+name+":", func(l string) (Reg, error) {
			return ParseReg(l, RegQuery)
		})
		if err != nil {
			rec(strings.ToLower(name), err)
			continue
		}
		*d.dst = &v
	}
	return r
}

// Registration reads CREG, CGREG and CEREG, returning what it could and
// the failures joined. Use Registration.Registered to judge the whole.
func (m *Modem) Registration(ctx context.Context) (Registration, error) {
	var errs joined
	r := m.registration(ctx, errs.record)
	return r, errors.Join(errs...)
}

// Operator reads AT+COPS?.
func (m *Modem) Operator(ctx context.Context) (Operator, error) {
	return query(ctx, m, "operator", "AT+COPS?", "+COPS:", ParseCOPS)
}

// NetworkInfo reads AT+QNWINFO.
func (m *Modem) NetworkInfo(ctx context.Context) (NetInfo, error) {
	return query(ctx, m, "network info", "AT+QNWINFO", "+QNWINFO:", ParseQNWINFO)
}

// SMSC reads the service centre the modem sends MO SMS through when a
// PDU names none, AT+CSCA?: the SIM's own unless something set it.
func (m *Modem) SMSC(ctx context.Context) (string, error) {
	return query(ctx, m, "service centre", "AT+CSCA?", "+CSCA:", ParseCSCA)
}

// Attached reads the packet-domain attach state, AT+CGATT?.
func (m *Modem) Attached(ctx context.Context) (bool, error) {
	return query(ctx, m, "attach state", "AT+CGATT?", "+CGATT:", ParseCGATT)
}

// SetAttach attaches to or detaches from the packet domain. The engine
// allows AT+CGATT= its documented 140 s.
func (m *Modem) SetAttach(ctx context.Context, attach bool) error {
	cmd := "AT+CGATT=0"
	if attach {
		cmd = "AT+CGATT=1"
	}
	if _, err := m.c.Command(ctx, cmd); err != nil {
		return fmt.Errorf("bg96: set attach %t: %w", attach, err)
	}
	return nil
}

// Functionality reads AT+CFUN?.
func (m *Modem) Functionality(ctx context.Context) (Functionality, error) {
	return query(ctx, m, "functionality", "AT+CFUN?", "+CFUN:", ParseCFUN)
}

// SetFunctionality sets AT+CFUN to one of the levels the BG96 supports.
func (m *Modem) SetFunctionality(ctx context.Context, fun Functionality) error {
	switch fun {
	case FunMinimum, FunFull, FunRFOff:
	default:
		return fmt.Errorf("bg96: functionality %d not supported (want 0, 1 or 4)", fun)
	}
	if _, err := m.c.Command(ctx, fmt.Sprintf("AT+CFUN=%d", fun)); err != nil {
		return fmt.Errorf("bg96: set functionality %d: %w", fun, err)
	}
	return nil
}

// RadioOff enters flight mode (CFUN=4) rather than minimum functionality
// (CFUN=0): the SIM stays powered, so stored SMS can still be read and
// deleted while the radio is off.
func (m *Modem) RadioOff(ctx context.Context) error { return m.SetFunctionality(ctx, FunRFOff) }

// RadioOn restores full functionality.
func (m *Modem) RadioOn(ctx context.Context) error { return m.SetFunctionality(ctx, FunFull) }

// Reboot resets the modem with AT+CFUN=1,1. It answers OK, prints
// "POWERED DOWN", ignores commands for a few seconds and then prints RDY:
// follow with WaitReady and Init.
func (m *Modem) Reboot(ctx context.Context) error {
	if _, err := m.c.Command(ctx, "AT+CFUN=1,1"); err != nil {
		return fmt.Errorf("bg96: reboot: %w", err)
	}
	return nil
}

// PowerDown asks the modem to shut down with AT+QPOWD=1. Its OK only means
// the request was taken: power must not be cut before "POWERED DOWN",
// because the modem is still writing its flash. PowerDownAndWait does both
// without a race.
func (m *Modem) PowerDown(ctx context.Context) error {
	if _, err := m.c.Command(ctx, "AT+QPOWD=1"); err != nil {
		return fmt.Errorf("bg96: power down: %w", err)
	}
	return nil
}

// PowerDownTimeout is how long ModemManager waits for "POWERED DOWN".
const PowerDownTimeout = 62 * time.Second

// PowerDownAndWait sends AT+QPOWD=1 and waits for "POWERED DOWN", at most
// PowerDownTimeout. The watch is armed before the command because the
// engine hands a URC only to a handler registered when it arrives.
func (m *Modem) PowerDownAndWait(ctx context.Context, ind Indicator) error {
	w := Expect(ind, "POWERED DOWN")
	defer w.Stop()
	if err := m.PowerDown(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, PowerDownTimeout)
	defer cancel()
	if _, err := w.Wait(ctx); err != nil {
		return fmt.Errorf("bg96: waiting for POWERED DOWN: %w", err)
	}
	return nil
}
