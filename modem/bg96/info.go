package bg96

import (
	"strings"
)

// Operator is the answer to AT+COPS? (TS 27.007 §7.3). Name is empty when
// the modem is not registered ("+COPS: 0").
type Operator struct {
	// Mode is 0 automatic, 1 manual, 2 deregistered, 4 manual then
	// automatic.
	Mode int `json:"mode"`
	// Format says what Name is: 0 long alphanumeric, 1 short alphanumeric,
	// 2 numeric MCC+MNC.
	Format *int   `json:"format,omitempty"`
	Name   string `json:"name,omitempty"`
	AcT    *AcT   `json:"act,omitempty"`
}

// ParseCOPS parses "+COPS: <mode>[,<format>,<oper>[,<AcT>]]".
func ParseCOPS(line string) (Operator, error) {
	f, err := fields(line, "+COPS:")
	if err != nil {
		return Operator{}, err
	}
	if len(f) > 4 {
		return Operator{}, parseErr(line, "want at most 4 values, got %d", len(f))
	}
	mode, err := atoi(line, "mode", f[0])
	if err != nil {
		return Operator{}, err
	}
	if mode < 0 || mode > 4 {
		return Operator{}, parseErr(line, "mode %d outside 0..4", mode)
	}
	op := Operator{Mode: mode, Name: field(f, 2)}
	if op.Format, err = optInt(line, "format", field(f, 1)); err != nil {
		return Operator{}, err
	}
	if op.Format != nil && (*op.Format < 0 || *op.Format > 2) {
		return Operator{}, parseErr(line, "format %d outside 0..2", *op.Format)
	}
	if op.AcT, err = parseAcT(line, field(f, 3)); err != nil {
		return Operator{}, err
	}
	return op, nil
}

// NetInfo is the answer to AT+QNWINFO. The texts are Quectel's own
// ("CAT-M1", "EDGE", "FDD LTE"; "LTE BAND 20", "GSM 900") and are kept as
// printed; NoService is set for "+QNWINFO: No Service".
type NetInfo struct {
	NoService bool   `json:"no_service,omitempty"`
	AcT       string `json:"act,omitempty"`
	Operator  string `json:"operator,omitempty"` // numeric MCC+MNC
	Band      string `json:"band,omitempty"`
	Channel   *int   `json:"channel,omitempty"` // (E/U)ARFCN
}

// ParseQNWINFO parses "+QNWINFO: <act>,<oper>,<band>,<channel>" and
// "+QNWINFO: No Service".
func ParseQNWINFO(line string) (NetInfo, error) {
	f, err := fields(line, "+QNWINFO:")
	if err != nil {
		return NetInfo{}, err
	}
	if len(f) == 1 && strings.EqualFold(f[0], "No Service") {
		return NetInfo{NoService: true}, nil
	}
	if len(f) != 4 {
		return NetInfo{}, parseErr(line, "want 4 values, got %d", len(f))
	}
	if f[0] == "" {
		return NetInfo{}, parseErr(line, "empty access technology")
	}
	if f[1] != "" && !isDigits(f[1]) {
		return NetInfo{}, parseErr(line, "operator %q is not numeric", f[1])
	}
	ch, err := optInt(line, "channel", f[3])
	if err != nil {
		return NetInfo{}, err
	}
	return NetInfo{AcT: f[0], Operator: f[1], Band: f[2], Channel: ch}, nil
}

// ParseCGATT parses "+CGATT: <0|1>".
func ParseCGATT(line string) (bool, error) {
	f, err := fields(line, "+CGATT:")
	if err != nil {
		return false, err
	}
	switch {
	case len(f) != 1:
		return false, parseErr(line, "want 1 value, got %d", len(f))
	case f[0] == "0":
		return false, nil
	case f[0] == "1":
		return true, nil
	}
	return false, parseErr(line, "state %q is neither 0 nor 1", f[0])
}

// Functionality is the AT+CFUN level.
type Functionality int

// The levels the BG96 supports.
const (
	FunMinimum Functionality = 0 // RF and SIM off
	FunFull    Functionality = 1
	FunRFOff   Functionality = 4 // flight mode: RF off, SIM still readable
)

// ParseCFUN parses "+CFUN: <fun>".
func ParseCFUN(line string) (Functionality, error) {
	f, err := fields(line, "+CFUN:")
	if err != nil {
		return 0, err
	}
	n, err := atoi(line, "fun", f[0])
	if err != nil {
		return 0, err
	}
	if n < 0 || n > 127 {
		return 0, parseErr(line, "fun %d outside 0..127", n)
	}
	return Functionality(n), nil
}

// PINState is the answer to AT+CPIN?: READY, SIM PIN, SIM PUK, PH-SIM PIN…
type PINState string

// PINReady is the state in which the SIM can be used.
const PINReady PINState = "READY"

// ParseCPIN parses "+CPIN: <code>".
func ParseCPIN(line string) (PINState, error) {
	f, err := fields(line, "+CPIN:")
	if err != nil {
		return "", err
	}
	if len(f) != 1 || f[0] == "" {
		return "", parseErr(line, "want one code")
	}
	for i := 0; i < len(f[0]); i++ {
		c := f[0][i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == ' ' || c == '-') {
			return "", parseErr(line, "code %q has unexpected characters", f[0])
		}
	}
	return PINState(strings.ToUpper(f[0])), nil
}

// ParseQCCID parses "+QCCID: <iccid>". The SIM stores the ICCID in BCD with
// an F nibble padding odd lengths, which the BG96 prints; it is stripped.
func ParseQCCID(line string) (string, error) {
	f, err := fields(line, "+QCCID:")
	if err != nil {
		return "", err
	}
	if len(f) != 1 {
		return "", parseErr(line, "want 1 value, got %d", len(f))
	}
	id := strings.TrimRight(f[0], "Ff")
	if !isDigits(id) || len(id) < 19 || len(id) > 20 {
		return "", parseErr(line, "ICCID %q is not 19-20 digits", f[0])
	}
	return id, nil
}

// ParseIMEI parses the answer to AT+CGSN or AT+GSN: the bare 15 digits, or
// "+CGSN: <imei>" as some firmware prints it.
func ParseIMEI(line string) (string, error) {
	s := bareOrPrefixed(line, "+CGSN:")
	if !isDigits(s) || len(s) != 15 {
		return "", parseErr(line, "IMEI is not 15 digits")
	}
	return s, nil
}

// ParseIMSI parses the answer to AT+CIMI. An IMSI has at most 15 digits;
// 14-digit ones exist (two-digit MNC, ten-digit MSIN), so both are taken.
func ParseIMSI(line string) (string, error) {
	s := bareOrPrefixed(line, "+CIMI:")
	if !isDigits(s) || len(s) < 14 || len(s) > 15 {
		return "", parseErr(line, "IMSI is not 14-15 digits")
	}
	return s, nil
}

// ParseFirmware parses the answer to AT+QGMR or AT+CGMR
// ("BG96MAR02A10M1G", or "BG96MAR02A07M1G_01.016.01.016" from AT+QGMR).
// The "Revision: " of ATI is accepted too.
func ParseFirmware(line string) (string, error) {
	s := strings.TrimSpace(line)
	for _, p := range []string{"+QGMR:", "+CGMR:", "Revision:"} {
		if len(s) >= len(p) && strings.EqualFold(s[:len(p)], p) {
			s = strings.TrimSpace(s[len(p):])
		}
	}
	s = strings.Trim(s, `"`)
	if s == "" || len(s) > 64 {
		return "", parseErr(line, "firmware revision must be 1-64 characters")
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f || s[i] == '"' || s[i] == ',' {
			return "", parseErr(line, "firmware revision has unexpected characters")
		}
	}
	return s, nil
}

// Product is what ATI prints: manufacturer, model and "Revision: ...".
type Product struct {
	Manufacturer string `json:"manufacturer,omitempty"`
	Model        string `json:"model,omitempty"`
	Revision     string `json:"revision,omitempty"`
}

// ParseATI parses the information lines of ATI: "Quectel", "BG96",
// "Revision: BG96MAR02A07M1G". The revision line is optional.
func ParseATI(lines []string) (Product, error) {
	var text []string
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" {
			text = append(text, l)
		}
	}
	joined := strings.Join(lines, " | ")
	if len(text) < 2 || len(text) > 3 {
		return Product{}, parseErr(joined, "ATI wants manufacturer, model and revision lines, got %d lines", len(text))
	}
	p := Product{Manufacturer: text[0], Model: text[1]}
	if strings.HasPrefix(strings.ToLower(p.Model), "revision:") {
		return Product{}, parseErr(joined, "ATI has no model line")
	}
	if len(text) == 3 {
		if !strings.HasPrefix(strings.ToLower(text[2]), "revision:") {
			return Product{}, parseErr(joined, "third ATI line is not \"Revision: ...\"")
		}
		rev, err := ParseFirmware(text[2])
		if err != nil {
			return Product{}, err
		}
		p.Revision = rev
	}
	return p, nil
}

func bareOrPrefixed(line, prefix string) string {
	s := strings.TrimSpace(line)
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		s = strings.TrimSpace(s[len(prefix):])
	}
	return strings.Trim(s, `"`)
}
