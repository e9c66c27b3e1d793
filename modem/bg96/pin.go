package bg96

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"cellagent/modem/at"
)

// SIM PIN outcomes that no retry can fix: the agent raises an alert and
// stops, since each wrong entry brings the SIM closer to PUK lock.
var (
	ErrPINWrong       = errors.New("bg96: the SIM rejected the PIN")
	ErrPINLastAttempt = errors.New("bg96: one PIN attempt left; not entering the PIN (the SIM would lock on a mistake)")
	ErrPINNeeded      = errors.New("bg96: the SIM asks for a PIN and none is configured")
	ErrSIMPUK         = errors.New("bg96: the SIM is PUK-locked")
	// ErrSIMLocked is WaitReady's error for a SIM that asks for a PIN or
	// PUK.
	ErrSIMLocked = errors.New("bg96: SIM is locked")
)

// ParseQPINC parses `+QPINC: "SC",<pin attempts left>,<puk attempts left>`.
func ParseQPINC(line string) (pin, puk int, err error) {
	f, err := fields(line, "+QPINC:")
	if err != nil {
		return 0, 0, err
	}
	if len(f) != 3 {
		return 0, 0, parseErr(line, "want facility and two counters")
	}
	if pin, err = atoi(line, "pin counter", f[1]); err != nil {
		return 0, 0, err
	}
	if puk, err = atoi(line, "puk counter", f[2]); err != nil {
		return 0, 0, err
	}
	if pin < 0 || puk < 0 || pin > 10 || puk > 10 {
		return 0, 0, parseErr(line, "counters outside 0..10")
	}
	return pin, puk, nil
}

// UnlockSIM enters pin when the SIM asks for it. It reads the attempts
// left first (AT+QPINC) and never spends the last one; a rejected PIN is
// ErrPINWrong, to be reported and never retried.
func UnlockSIM(ctx context.Context, c Commander, pin string) error {
	m := New(c)
	st, err := query(ctx, m, "SIM state", "AT+CPIN?", "+CPIN:", ParseCPIN)
	if err != nil {
		return err
	}
	switch st {
	case PINReady:
		return nil
	case "SIM PIN":
	case "SIM PUK":
		return ErrSIMPUK
	default:
		return fmt.Errorf("bg96: SIM state %q", st)
	}
	if pin == "" {
		return ErrPINNeeded
	}
	left, _, err := parseQPINCAnswer(ctx, m)
	if err != nil {
		return err
	}
	if left <= 1 {
		return fmt.Errorf("%w (attempts left: %d)", ErrPINLastAttempt, left)
	}
	if _, err := c.Command(ctx, "AT+CPIN="+strconv.Quote(pin)); err != nil {
		var cme *at.CMEError
		if errors.As(err, &cme) && (cme.Code == 16 || cme.Code == 12) {
			return fmt.Errorf("%w (%v; %d attempts were left)", ErrPINWrong, err, left)
		}
		return fmt.Errorf("bg96: enter PIN: %w", err)
	}
	return nil
}

func parseQPINCAnswer(ctx context.Context, m *Modem) (int, int, error) {
	type pair struct{ pin, puk int }
	p, err := query(ctx, m, "PIN attempts", `AT+QPINC="SC"`, "+QPINC:", func(l string) (pair, error) {
		a, b, err := ParseQPINC(l)
		return pair{a, b}, err
	})
	return p.pin, p.puk, err
}

// ParseCEER reads the last failure cause, `+CEER: <text>` as the BG96
// prints it (sometimes with a numeric cause before the text); the text
// is returned as printed.
func ParseCEER(line string) (string, error) {
	f, err := fields(line, "+CEER:")
	if err != nil {
		return "", err
	}
	out := ""
	for _, v := range f {
		if v == "" {
			continue
		}
		if out != "" {
			out += ", "
		}
		out += v
	}
	if out == "" {
		return "", parseErr(line, "no cause")
	}
	return out, nil
}

// LastFailure asks AT+CEER for the cause of the last failed call or PDP
// activation.
func (m *Modem) LastFailure(ctx context.Context) (string, error) {
	return query(ctx, m, "failure cause", "AT+CEER", "+CEER:", ParseCEER)
}

// configCauses are the +CEER causes (ESM causes of 3GPP TS 24.301 §9.9.4.4,
// by text and number) that only a configuration change fixes: the
// network refuses the APN or its credentials, whatever the modem does.
var configCauses = []struct {
	code int
	text string
}{
	{27, "missing or unknown apn"},
	{29, "user authentication failed"},
	{33, "requested service option not subscribed"},
}

// ConfigCause says whether a +CEER cause is a configuration fault: no
// reset or redial can fix it.
func ConfigCause(cause string) bool {
	low := strings.ToLower(cause)
	for _, c := range configCauses {
		if strings.Contains(low, c.text) || strings.HasPrefix(low, strconv.Itoa(c.code)+",") {
			return true
		}
	}
	return false
}
