package bg96

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// RegStat is a registration state of +CREG/+CGREG/+CEREG (TS 27.007 §7.2).
type RegStat int

// Registration states. 6..10 are the E-UTRAN variants of 27.007; the BG96
// prints 0..5.
const (
	RegNotSearching       RegStat = 0 // not registered, not searching
	RegHome               RegStat = 1
	RegSearching          RegStat = 2 // not registered, searching
	RegDenied             RegStat = 3
	RegUnknown            RegStat = 4 // out of coverage, typically
	RegRoaming            RegStat = 5
	RegHomeSMSOnly        RegStat = 6
	RegRoamingSMSOnly     RegStat = 7
	RegEmergencyOnly      RegStat = 8
	RegHomeCSFBNotPref    RegStat = 9
	RegRoamingCSFBNotPref RegStat = 10
)

var regStatNames = [...]string{
	"not-searching", "home", "searching", "denied", "unknown", "roaming",
	"home-sms-only", "roaming-sms-only", "emergency-only",
	"home-csfb-not-preferred", "roaming-csfb-not-preferred",
}

func (s RegStat) String() string {
	if s >= 0 && int(s) < len(regStatNames) {
		return regStatNames[s]
	}
	return "stat(" + strconv.Itoa(int(s)) + ")"
}

// Registered reports whether the modem may use the network in this state.
func (s RegStat) Registered() bool {
	switch s {
	case RegHome, RegRoaming, RegHomeCSFBNotPref, RegRoamingCSFBNotPref:
		return true
	}
	return false
}

// MarshalText writes the name, so telemetry reads "home" rather than 1.
func (s RegStat) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a name written by MarshalText.
func (s *RegStat) UnmarshalText(b []byte) error {
	for i, n := range regStatNames {
		if n == string(b) {
			*s = RegStat(i)
			return nil
		}
	}
	return fmt.Errorf("bg96: unknown registration state %q", b)
}

// AcT is an access technology (TS 27.007 §7.3 <AcT>) as the BG96 numbers
// them: 8 is LTE Cat-M1 and 9 NB-IoT, where newer 27.007 releases give 8 to
// EC-GSM-IoT.
type AcT int

// Access technologies.
const (
	AcTGSM        AcT = 0
	AcTGSMCompact AcT = 1
	AcTUTRAN      AcT = 2
	AcTEGPRS      AcT = 3
	AcTHSDPA      AcT = 4
	AcTHSUPA      AcT = 5
	AcTHSPA       AcT = 6
	AcTLTE        AcT = 7
	AcTCatM1      AcT = 8
	AcTNBIoT      AcT = 9
	AcTLTE5GCN    AcT = 10
	AcTNR5GCN     AcT = 11
	AcTNGRAN      AcT = 12
	AcTENDC       AcT = 13
)

var actNames = [...]string{
	"GSM", "GSM-compact", "UTRAN", "EGPRS", "HSDPA", "HSUPA", "HSPA",
	"LTE", "CAT-M1", "NB-IoT", "LTE-5GCN", "NR-5GCN", "NG-RAN", "EN-DC",
}

func (a AcT) String() string {
	if a >= 0 && int(a) < len(actNames) {
		return actNames[a]
	}
	return "act(" + strconv.Itoa(int(a)) + ")"
}

// MarshalText writes the name.
func (a AcT) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText reads a name written by MarshalText.
func (a *AcT) UnmarshalText(b []byte) error {
	for i, n := range actNames {
		if n == string(b) {
			*a = AcT(i)
			return nil
		}
	}
	return fmt.Errorf("bg96: unknown access technology %q", b)
}

func parseAcT(line, s string) (*AcT, error) {
	v, err := optInt(line, "AcT", s)
	if err != nil || v == nil {
		return nil, err
	}
	if *v < 0 || *v >= len(actNames) {
		return nil, parseErr(line, "AcT %d is not a known access technology", *v)
	}
	return ptr(AcT(*v)), nil
}

// Domain is the registration a line reports on.
type Domain string

// Registration domains.
const (
	DomainCS   Domain = "CREG"  // circuit switched (SMS over CS, voice)
	DomainGPRS Domain = "CGREG" // packet switched, 2G/3G
	DomainEPS  Domain = "CEREG" // packet switched, LTE (Cat-M1, NB-IoT)
)

// RegForm says which shape a registration line has. The two cannot be told
// apart from the line: "+CREG: 1,5" is n=1,stat=5 as an answer to
// AT+CREG? and stat=1 with LAC 5 as a URC.
type RegForm int

// Registration line forms.
const (
	RegQuery RegForm = iota // answer to AT+CxREG?: <n>,<stat>[,<lac>,<ci>[,<AcT>...]]
	RegURC                  // unsolicited: <stat>[,<lac>,<ci>[,<AcT>...]]
)

// Reg is one registration report. LAC is the location or tracking area
// code; CI the cell id (28 bits on UMTS and LTE).
type Reg struct {
	Domain Domain  `json:"domain"`
	N      *int    `json:"n,omitempty"` // URC mode, only in the query form
	Stat   RegStat `json:"stat"`
	LAC    *uint32 `json:"lac,omitempty"`
	CI     *uint32 `json:"ci,omitempty"`
	AcT    *AcT    `json:"act,omitempty"`
}

// regJSON is Reg as JSON: the area and cell as hex strings, as the modem
// prints them and as telemetry carries them, so the same cell reads the
// same everywhere.
type regJSON struct {
	Domain Domain  `json:"domain"`
	N      *int    `json:"n,omitempty"`
	Stat   RegStat `json:"stat"`
	LAC    string  `json:"lac,omitempty"`
	CI     string  `json:"ci,omitempty"`
	AcT    *AcT    `json:"act,omitempty"`
}

// MarshalJSON writes LAC and CI in hex.
func (r Reg) MarshalJSON() ([]byte, error) {
	j := regJSON{Domain: r.Domain, N: r.N, Stat: r.Stat, AcT: r.AcT}
	if r.LAC != nil {
		j.LAC = strconv.FormatUint(uint64(*r.LAC), 16)
	}
	if r.CI != nil {
		j.CI = strconv.FormatUint(uint64(*r.CI), 16)
	}
	j.LAC, j.CI = strings.ToUpper(j.LAC), strings.ToUpper(j.CI)
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *Reg) UnmarshalJSON(b []byte) error {
	var j regJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*r = Reg{Domain: j.Domain, N: j.N, Stat: j.Stat, AcT: j.AcT}
	for _, f := range []struct {
		s   string
		dst **uint32
	}{{j.LAC, &r.LAC}, {j.CI, &r.CI}} {
		if f.s == "" {
			continue
		}
		v, err := strconv.ParseUint(f.s, 16, 32)
		if err != nil {
			return fmt.Errorf("bg96: registration: %q is not hex", f.s)
		}
		v32 := uint32(v)
		*f.dst = &v32
	}
	return nil
}

// ParseReg parses a +CREG:, +CGREG: or +CEREG: line in the given form.
// Fields after <AcT> (RAC, reject cause, PSM timers) are accepted and
// ignored, as in the BG96's "+CGREG: 4,5,"66C0","1042","0",,,,"00000000",…".
func ParseReg(line string, form RegForm) (Reg, error) {
	if form != RegQuery && form != RegURC {
		return Reg{}, fmt.Errorf("bg96: unknown registration line form %d", form)
	}
	s := strings.TrimSpace(line)
	var r Reg
	for _, d := range []Domain{DomainCS, DomainGPRS, DomainEPS} {
		p := "+" + string(d) + ":"
		if len(s) >= len(p) && strings.EqualFold(s[:len(p)], p) {
			r.Domain = d
		}
	}
	if r.Domain == "" {
		return Reg{}, parseErr(line, "not a +CREG/+CGREG/+CEREG line")
	}
	f, err := fields(s, "+"+string(r.Domain)+":")
	if err != nil {
		return Reg{}, err
	}
	if form == RegQuery {
		n, err := atoi(line, "n", f[0])
		if err != nil {
			return Reg{}, err
		}
		if len(f) < 2 {
			return Reg{}, parseErr(line, "query answer without <stat>")
		}
		r.N = &n
		f = f[1:]
	}
	stat, err := atoi(line, "stat", f[0])
	if err != nil {
		return Reg{}, err
	}
	if stat < 0 || stat >= len(regStatNames) {
		return Reg{}, parseErr(line, "stat %d is not a registration state", stat)
	}
	r.Stat = RegStat(stat)
	if r.LAC, err = optHex(line, "lac", field(f, 1), 24); err != nil {
		return Reg{}, err
	}
	if r.CI, err = optHex(line, "ci", field(f, 2), 28); err != nil {
		return Reg{}, err
	}
	if r.AcT, err = parseAcT(line, field(f, 3)); err != nil {
		return Reg{}, err
	}
	return r, nil
}

// Registration holds the three registration domains; nil is a domain that
// could not be read.
type Registration struct {
	CS   *Reg `json:"creg,omitempty"`
	GPRS *Reg `json:"cgreg,omitempty"`
	EPS  *Reg `json:"cereg,omitempty"`
}

// Overall judges the registration from all three domains, preferring EPS,
// then GPRS, then CS. A Cat-M-only SIM reports "+CREG: 0,2" or "0,3" while
// attached on LTE (seen on BG96 and EP06), so a denied or searching CS
// domain must not hide a working EPS registration, nor decide the reported
// state when EPS has its own. It returns the domain that decided.
func (r Registration) Overall() (RegStat, Domain) {
	order := []*Reg{r.EPS, r.GPRS, r.CS}
	for _, d := range order {
		if d != nil && d.Stat.Registered() {
			return d.Stat, d.Domain
		}
	}
	for _, d := range order {
		if d != nil {
			return d.Stat, d.Domain
		}
	}
	return RegUnknown, ""
}

// Registered reports whether any domain is registered; see Overall.
func (r Registration) Registered() bool {
	s, _ := r.Overall()
	return s.Registered()
}
