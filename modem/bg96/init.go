package bg96

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"cellagent/modem/at"
)

// Step is one command of a script, written as data in the manner of
// Zephyr's modem_chat scripts so the sequence can be read, logged and
// tested as a table.
type Step struct {
	Cmd      string
	Timeout  time.Duration // 0: the engine's limit for the command
	Required bool          // a failure stops the script
	Why      string
}

// InitConfig parameterises the init script.
type InitConfig struct {
	// SMSC, when set, is written with AT+CSCA. Spaces and dashes are
	// dropped, so "+882 285 00001 6860" as the operator prints it works.
	SMSC string
	// Log receives failures of optional steps; nil discards them.
	Log *slog.Logger
}

// OperatorSMSC is the service centre of the operator's SIMs.
const OperatorSMSC = "+882 285 00001 6860"

// Script returns the init sequence for cfg.
func Script(cfg InitConfig) ([]Step, error) {
	steps := []Step{
		{Cmd: "ATE0", Timeout: 2 * time.Second,
			Why: "echo off halves the traffic; optional because the engine strips echoes anyway"},
		{Cmd: "AT+CMEE=2", Timeout: 2 * time.Second,
			Why: "verbose +CME ERROR texts for logs; optional because numeric or bare ERROR still fail cleanly"},
		{Cmd: "AT+CMGF=0", Timeout: 5 * time.Second, Required: true,
			Why: "PDU mode: modem/sms encodes and decodes PDUs itself"},
		{Cmd: "AT+CNMI=2,1,0,1,0", Timeout: 5 * time.Second, Required: true,
			Why: "mt=1 stores each MT SMS in SM and announces it with +CMTI, so a message survives an agent crash until we have fsync'd it and deleted it; " +
				"ds=1 routes status reports directly as +CDS (ds=2 on Quectel stores them in \"SR\" but announces \"SM\"); mode=2 buffers URCs while the link is busy; bm=0 no cell broadcast"},
		{Cmd: "AT+CREG=2", Timeout: 2 * time.Second,
			Why: "CS registration URCs with LAC and cell id; optional because AT+CREG? still answers"},
		{Cmd: "AT+CGREG=2", Timeout: 2 * time.Second,
			Why: "GPRS registration URCs with LAC and cell id; optional as above"},
		{Cmd: "AT+CEREG=2", Timeout: 2 * time.Second,
			Why: "EPS registration URCs with TAC and cell id, the reliable state on LTE-M; optional as above"},
	}
	if cfg.SMSC != "" {
		num, toa, err := NormalizeSMSC(cfg.SMSC)
		if err != nil {
			return nil, err
		}
		steps = append(steps, Step{Cmd: fmt.Sprintf("AT+CSCA=%q,%d", num, toa), Timeout: 5 * time.Second, Required: true,
			Why: "MO SMS must go through the operator's SMSC; the SIM's default may be wrong"})
	}
	steps = append(steps, Step{Cmd: `AT+CPMS="SM","SM","SM"`, Timeout: 10 * time.Second, Required: true,
		Why: "read, write and receive all in SIM storage, the memory +CMTI names, so index and memory always agree"})
	return steps, nil
}

// ParseCSCA parses the answer to AT+CSCA?, `+CSCA: "+491710760000",145`,
// into the service centre number as the modem holds it; "" when the SIM
// names none (`+CSCA: "",129`).
func ParseCSCA(line string) (string, error) {
	f, err := fields(line, "+CSCA:")
	if err != nil {
		return "", err
	}
	if len(f) > 2 {
		return "", parseErr(line, "want a number and its type, got %d values", len(f))
	}
	num := f[0]
	if num == "" {
		return "", nil
	}
	if _, _, err := NormalizeSMSC(num); err != nil {
		return "", parseErr(line, "%q is not a service centre number", num)
	}
	return num, nil
}

// NormalizeSMSC turns a service centre number into the form AT+CSCA takes
// and its type of address: 145 international ("+" prefix), 129 otherwise.
func NormalizeSMSC(s string) (string, int, error) {
	num := strings.NewReplacer(" ", "", "-", "", "\t", "").Replace(strings.TrimSpace(s))
	toa := 129
	if strings.HasPrefix(num, "+") {
		num, toa = num[1:], 145
	}
	if !isDigits(num) || len(num) > 20 {
		return "", 0, fmt.Errorf("bg96: SMSC %q is not a phone number of at most 20 digits", s)
	}
	if toa == 145 {
		num = "+" + num
	}
	return num, toa, nil
}

// StepError is the failure of a required script step.
type StepError struct {
	Index int // from 1
	Step  Step
	Err   error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("bg96: init step %d (%s) failed: %v", e.Index, e.Step.Cmd, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// Init runs Script(cfg) over c.
func Init(ctx context.Context, c Commander, cfg InitConfig) error {
	steps, err := Script(cfg)
	if err != nil {
		return err
	}
	return Run(ctx, c, steps, cfg.Log)
}

// Run executes steps in order. It logs failed optional steps and stops at
// the first failed required one with a *StepError.
func Run(ctx context.Context, c Commander, steps []Step, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for i, st := range steps {
		var opts []at.CommandOption
		if st.Timeout > 0 {
			opts = append(opts, at.WithTimeout(st.Timeout))
		}
		_, err := c.Command(ctx, st.Cmd, opts...)
		if err == nil {
			continue
		}
		// A closed port or a spent context would fail every later step too.
		if st.Required || ctx.Err() != nil || errors.Is(err, at.ErrClosed) {
			return &StepError{Index: i + 1, Step: st, Err: err}
		}
		log.Warn("bg96: optional init step failed", "cmd", st.Cmd, "err", err)
	}
	return nil
}
