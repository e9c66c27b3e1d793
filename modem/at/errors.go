package at

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

var (
	// ErrError is the plain "ERROR" final result code. Modems answer it for
	// unknown commands and, with AT+CMEE=0, for every failure.
	ErrError = errors.New("ERROR")

	// ErrClosed is returned by every pending and future command once the port
	// has been closed or has failed; the owner reopens the port and builds a
	// new engine.
	ErrClosed = errors.New("at: port closed")

	// ErrTimeout is returned when no final result code arrived within the
	// command's time limit. The next command is fenced first so that a late
	// answer cannot be taken for its own.
	ErrTimeout = errors.New("at: no final result code before the time limit")
)

// CMEError is a "+CME ERROR: <err>" final result code (3GPP TS 27.007 §9.2).
// With AT+CMEE=1 the modem sends the number, with AT+CMEE=2 the text; both
// forms are filled in from the standard table where possible. Code is -1 when
// the modem sent a text that is not in the table.
type CMEError struct {
	Code int
	Text string
}

func (e *CMEError) Error() string { return formatCoded("+CME ERROR", e.Code, e.Text) }

// CMSError is a "+CMS ERROR: <err>" final result code (3GPP TS 27.005
// §3.2.5), the SMS counterpart of CMEError. Codes below 128 are network
// causes from TS 24.011.
type CMSError struct {
	Code int
	Text string
}

func (e *CMSError) Error() string { return formatCoded("+CMS ERROR", e.Code, e.Text) }

// ResultError is a final result code other than OK, ERROR, +CME and +CMS:
// NO CARRIER, BUSY, NO ANSWER, NO DIALTONE, SEND FAIL or ABORTED.
type ResultError struct {
	Result string
}

func (e *ResultError) Error() string { return e.Result }

func formatCoded(kind string, code int, text string) string {
	switch {
	case code < 0:
		return kind + ": " + text
	case text == "":
		return kind + ": " + strconv.Itoa(code)
	default:
		return fmt.Sprintf("%s: %d (%s)", kind, code, text)
	}
}

// cmeText holds the codes of TS 27.007 §9.2.1/9.2.2 that a gateway is likely
// to meet. Lower-case text is what AT+CMEE=2 prints on Quectel modules.
var cmeText = map[int]string{
	0:   "phone failure",
	1:   "no connection to phone",
	3:   "operation not allowed",
	4:   "operation not supported",
	5:   "PH-SIM PIN required",
	10:  "SIM not inserted",
	11:  "SIM PIN required",
	12:  "SIM PUK required",
	13:  "SIM failure",
	14:  "SIM busy",
	15:  "SIM wrong",
	16:  "incorrect password",
	17:  "SIM PIN2 required",
	18:  "SIM PUK2 required",
	20:  "memory full",
	21:  "invalid index",
	22:  "not found",
	23:  "memory failure",
	24:  "text string too long",
	25:  "invalid characters in text string",
	26:  "dial string too long",
	27:  "invalid characters in dial string",
	30:  "no network service",
	31:  "network timeout",
	32:  "network not allowed - emergency calls only",
	100: "unknown",
	103: "illegal MS",
	106: "illegal ME",
	107: "GPRS services not allowed",
	111: "PLMN not allowed",
	112: "location area not allowed",
	113: "roaming not allowed in this location area",
	132: "service option not supported",
	133: "requested service option not subscribed",
	134: "service option temporarily out of order",
	148: "unspecified GPRS error",
	149: "PDP authentication failure",
	150: "invalid mobile class",
}

// cmsText holds TS 27.005 §3.2.5 codes and the TS 24.011 network causes
// that decide whether an SMS submission is worth retrying.
var cmsText = map[int]string{
	1:   "unassigned (unallocated) number",
	8:   "operator determined barring",
	10:  "call barred",
	21:  "short message transfer rejected",
	27:  "destination out of service",
	28:  "unidentified subscriber",
	29:  "facility rejected",
	30:  "unknown subscriber",
	38:  "network out of order",
	41:  "temporary failure",
	42:  "congestion",
	47:  "resources unavailable, unspecified",
	50:  "requested facility not subscribed",
	69:  "requested facility not implemented",
	81:  "invalid short message transfer reference value",
	95:  "invalid message, unspecified",
	96:  "invalid mandatory information",
	97:  "message type non-existent or not implemented",
	98:  "message not compatible with short message protocol state",
	99:  "information element non-existent or not implemented",
	111: "protocol error, unspecified",
	127: "interworking, unspecified",
	300: "ME failure",
	301: "SMS service of ME reserved",
	302: "operation not allowed",
	303: "operation not supported",
	304: "invalid PDU mode parameter",
	305: "invalid text mode parameter",
	310: "SIM not inserted",
	311: "SIM PIN required",
	312: "PH-SIM PIN required",
	313: "SIM failure",
	314: "SIM busy",
	315: "SIM wrong",
	316: "SIM PUK required",
	317: "SIM PIN2 required",
	318: "SIM PUK2 required",
	320: "memory failure",
	321: "invalid memory index",
	322: "memory full",
	330: "SMSC address unknown",
	331: "no network service",
	332: "network timeout",
	340: "no +CNMA acknowledgement expected",
	500: "unknown error",
}

var (
	cmeCode = invert(cmeText)
	cmsCode = invert(cmsText)
)

func invert(m map[int]string) map[string]int {
	r := make(map[string]int, len(m))
	for k, v := range m {
		r[strings.ToLower(v)] = k
	}
	return r
}

// codeAndText reads the <err> of a +CME/+CMS ERROR, which is a number with
// AT+CMEE=1 and a text with AT+CMEE=2.
func codeAndText(arg string, texts map[int]string, codes map[string]int) (int, string) {
	arg = strings.Trim(strings.TrimSpace(arg), `"`)
	if n, err := strconv.Atoi(arg); err == nil && n >= 0 {
		return n, texts[n]
	}
	if n, ok := codes[strings.ToLower(arg)]; ok {
		return n, texts[n]
	}
	return -1, arg
}

// finalResult classifies a line. ok reports whether it is a final result
// code; err is nil for the successful ones.
func finalResult(line string) (ok bool, err error) {
	switch line {
	case "OK", "SEND OK":
		return true, nil
	case "ERROR":
		return true, ErrError
	case "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE", "SEND FAIL", "ABORTED":
		return true, &ResultError{Result: line}
	}
	if arg, found := cutErrorPrefix(line, "CME ERROR"); found {
		code, text := codeAndText(arg, cmeText, cmeCode)
		return true, &CMEError{Code: code, Text: text}
	}
	if arg, found := cutErrorPrefix(line, "CMS ERROR"); found {
		code, text := codeAndText(arg, cmsText, cmsCode)
		return true, &CMSError{Code: code, Text: text}
	}
	return false, nil
}

// cutErrorPrefix accepts "+CME ERROR: x" and the "CME Error: x" spelling
// some Quectel firmware prints.
func cutErrorPrefix(line, kind string) (string, bool) {
	s := strings.TrimPrefix(line, "+")
	if len(s) < len(kind)+1 || !strings.EqualFold(s[:len(kind)], kind) || s[len(kind)] != ':' {
		return "", false
	}
	return s[len(kind)+1:], true
}
