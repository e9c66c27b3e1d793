package bg96

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"cellagent/modem/at"
)

// Profile is the network profile wanted in the modem. A zero field leaves
// the modem's value alone. The values live in the BG96's NVRAM, so
// ApplyProfile reads each one and writes only what differs: rewriting
// them at every start wears the flash.
type Profile struct {
	CID     int    // PDP context, 1-15; 0 means 1
	PDPType string // IP, IPV6 or IPV4V6
	APN     string
	// Auth is AuthNone, AuthPAP or AuthCHAP; with AuthUnset the
	// credentials are left alone.
	Auth               Auth
	Username, Password string
	// RAT lists access technologies in search order (RATLTEM, RATNBIoT,
	// RATGSM); it sets nwscanseq, nwscanmode and iotopmode.
	RAT []RAT
	// Band masks as AT+QCFG="band" takes them; nil leaves one alone.
	GSMBands, LTEMBands, NBIoTBands *uint64
	// Roaming nil leaves AT+QCFG="roamservice" alone.
	Roaming *bool
	// Operator is "", "auto" or a numeric MCC+MNC (manual selection).
	Operator string
}

// Auth is an APN authentication type as AT+QICSGP numbers it, plus one.
type Auth int

// Authentication types; AuthUnset leaves AT+QICSGP alone.
const (
	AuthUnset Auth = iota
	AuthNone
	AuthPAP
	AuthCHAP
)

// RAT is an access technology as AT+QCFG="nwscanseq" numbers it.
type RAT string

// Access technologies.
const (
	RATGSM   RAT = "01"
	RATLTEM  RAT = "02"
	RATNBIoT RAT = "03"
)

func (p Profile) cid() int {
	if p.CID == 0 {
		return 1
	}
	return p.CID
}

// setting is one row of the profile: how to read the modem's value, the
// value wanted, and how to write it, as data.
type setting struct {
	name string
	read string // the query
	// value extracts the canonical current value from the answer.
	value func(lines []string) (string, error)
	// want is the canonical wanted value given the current one ("" when
	// nothing is wanted).
	want  func(cur string) string
	write func(want string) string
	// same compares canonical values; nil is ==.
	same func(a, b string) bool
	// restart: the change takes effect only at the next attach, so the
	// radio goes off and on once after all writes.
	restart bool
	// secret values never appear in changes or status.
	secret bool
}

// settings is the profile as a table, in write order.
func (p Profile) settings() []setting {
	cid := p.cid()
	var rows []setting
	if p.APN != "" {
		typ := p.PDPType
		if typ == "" {
			typ = "IP"
		}
		rows = append(rows, setting{
			name: "pdp_context", read: "AT+CGDCONT?",
			value: func(lines []string) (string, error) { return cgdcont(lines, cid) },
			want:  func(string) string { return typ + "," + p.APN },
			write: func(w string) string {
				t, apn, _ := strings.Cut(w, ",")
				return fmt.Sprintf("AT+CGDCONT=%d,%q,%q", cid, t, apn)
			},
			// APNs compare without case (3GPP TS 23.003 §9.1).
			same:    strings.EqualFold,
			restart: true,
		})
	}
	if p.Auth != AuthUnset && p.APN != "" {
		rows = append(rows, setting{
			name: "apn_auth", read: fmt.Sprintf("AT+QICSGP=%d", cid),
			value: qicsgp,
			want: func(string) string {
				if p.Auth == AuthNone {
					return "0,,"
				}
				return strconv.Itoa(int(p.Auth)-1) + "," + p.Username + "," + p.Password
			},
			write: func(w string) string {
				f := strings.SplitN(w, ",", 3)
				ctxType := map[string]int{"IPV6": 2, "IPV4V6": 3}[p.PDPType]
				return fmt.Sprintf("AT+QICSGP=%d,%d,%q,%q,%q,%s", cid, max(ctxType, 1), p.APN, f[1], f[2], f[0])
			},
			restart: true, secret: true,
		})
	}
	if len(p.RAT) > 0 {
		seq, mode, iot := ratSettings(p.RAT)
		rows = append(rows, qcfg("nwscanseq", func(string) string { return seq }))
		rows = append(rows, qcfg("nwscanmode", func(string) string { return mode }))
		if iot != "" {
			rows = append(rows, qcfg("iotopmode", func(string) string { return iot }))
		}
	}
	if p.GSMBands != nil || p.LTEMBands != nil || p.NBIoTBands != nil {
		r := qcfg("band", func(cur string) string {
			f := strings.Split(cur, ",")
			if len(f) != 3 {
				return ""
			}
			for i, m := range []*uint64{p.GSMBands, p.LTEMBands, p.NBIoTBands} {
				if m != nil {
					f[i] = "0x" + strconv.FormatUint(*m, 16)
				}
			}
			return strings.Join(f, ",")
		})
		r.value = bandValue
		r.write = func(w string) string { return `AT+QCFG="band",` + w + ",1" }
		rows = append(rows, r)
	}
	if p.Roaming != nil {
		v := "1"
		if *p.Roaming {
			v = "2"
		}
		rows = append(rows, qcfg("roamservice", func(string) string { return v }))
	}
	if p.Operator != "" {
		rows = append(rows, setting{
			name: "operator", read: "AT+COPS?", value: copsValue,
			want: func(string) string { return p.Operator },
			write: func(w string) string {
				if w == "auto" {
					return "AT+COPS=0"
				}
				return fmt.Sprintf("AT+COPS=1,2,%q", w)
			},
		})
	}
	return rows
}

// ratSettings turns an ordered RAT list into nwscanseq, nwscanmode (0
// automatic, 1 GSM only, 3 LTE only) and iotopmode (0 LTE-M, 1 NB-IoT,
// 2 both; "" when no LTE RAT is listed).
func ratSettings(rats []RAT) (seq, mode, iot string) {
	has := map[RAT]bool{}
	for _, r := range rats {
		seq += string(r)
		has[r] = true
	}
	lte := has[RATLTEM] || has[RATNBIoT]
	switch {
	case has[RATGSM] && lte:
		mode = "0"
	case has[RATGSM]:
		mode = "1"
	default:
		mode = "3"
	}
	switch {
	case has[RATLTEM] && has[RATNBIoT]:
		iot = "2"
	case has[RATLTEM]:
		iot = "0"
	case has[RATNBIoT]:
		iot = "1"
	}
	return seq, mode, iot
}

// qcfg is a one-value AT+QCFG setting, written with effect=1 (at once).
func qcfg(name string, want func(string) string) setting {
	return setting{
		name: name, read: fmt.Sprintf("AT+QCFG=%q", name),
		value: func(lines []string) (string, error) {
			f, err := qcfgFields(lines, name)
			if err != nil {
				return "", err
			}
			return f[0], nil
		},
		want:  want,
		write: func(w string) string { return fmt.Sprintf("AT+QCFG=%q,%s,1", name, w) },
	}
}

// qcfgFields finds `+QCFG: "<name>",<values...>` and returns the values.
func qcfgFields(lines []string, name string) ([]string, error) {
	for _, l := range lines {
		f, err := fields(l, "+QCFG:")
		if err != nil || len(f) < 2 || !strings.EqualFold(f[0], name) {
			continue
		}
		return f[1:], nil
	}
	return nil, fmt.Errorf("no +QCFG: %q line in %q", name, lines)
}

// bandValue reads `+QCFG: "band",0xf,0x80084,0x80084` as three masks in
// lower-case hex, so masks compare as numbers.
func bandValue(lines []string) (string, error) {
	f, err := qcfgFields(lines, "band")
	if err != nil {
		return "", err
	}
	if len(f) != 3 {
		return "", parseErr(strings.Join(lines, " "), "want three band masks")
	}
	for i, s := range f {
		v, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(s), "0x"), 16, 64)
		if err != nil {
			return "", parseErr(s, "band mask is not hex")
		}
		f[i] = "0x" + strconv.FormatUint(v, 16)
	}
	return strings.Join(f, ","), nil
}

// cgdcont finds context cid in the AT+CGDCONT? answer: "IP,apn", or ""
// when the context is not defined.
func cgdcont(lines []string, cid int) (string, error) {
	for _, l := range lines {
		f, err := fields(l, "+CGDCONT:")
		if err != nil || len(f) < 3 {
			continue
		}
		if n, err := strconv.Atoi(f[0]); err == nil && n == cid {
			return f[1] + "," + f[2], nil
		}
	}
	return "", nil
}

// qicsgp reads `+QICSGP: <type>,"apn","user","pass",<auth>` as
// "auth,user,pass" (auth as AT+QICSGP numbers it).
func qicsgp(lines []string) (string, error) {
	for _, l := range lines {
		f, err := fields(l, "+QICSGP:")
		if err != nil || len(f) < 5 {
			continue
		}
		return f[4] + "," + f[2] + "," + f[3], nil
	}
	return "", fmt.Errorf("no +QICSGP line in the answer")
}

// copsValue reads +COPS: <mode>[,<format>,<oper>[,<act>]] as "auto", the
// numeric operator of a manual selection, or "manual" when the format
// is not numeric (the next write makes it so).
func copsValue(lines []string) (string, error) {
	for _, l := range lines {
		f, err := fields(l, "+COPS:")
		if err != nil {
			continue
		}
		switch {
		case f[0] == "0":
			return "auto", nil
		case f[0] == "1" && field(f, 1) == "2":
			return field(f, 2), nil
		}
		return "mode " + f[0], nil
	}
	return "", fmt.Errorf("no +COPS line in the answer")
}

// Change is one setting ApplyProfile wrote. From and To are empty for
// secret settings (APN credentials).
type Change struct {
	Setting string `json:"setting"`
	From    string `json:"from,omitempty"`
	To      string `json:"to,omitempty"`
}

// SettingState is one setting as configured and as read from the modem.
type SettingState struct {
	Setting string `json:"setting"`
	Want    string `json:"want"`
	Actual  string `json:"actual"`
	Error   string `json:"error,omitempty"`
}

// Applied is what ApplyProfile found and did.
type Applied struct {
	Changes []Change `json:"changes,omitempty"`
	// Restarted says the radio went off and on once for the changes.
	Restarted bool           `json:"restarted,omitempty"`
	Settings  []SettingState `json:"settings"`
}

// ApplyProfile reads each setting of p, writes those that differ, and
// restarts the radio once (AT+CFUN=0, AT+CFUN=1) when a written setting
// takes effect only at the next attach. A setting that cannot be read is
// not written blind; its error is joined into the result and the others
// go on.
func ApplyProfile(ctx context.Context, c Commander, p Profile) (Applied, error) {
	var res Applied
	var errs []error
	restart := false
	for _, s := range p.settings() {
		st := SettingState{Setting: s.name}
		lines, err := c.Command(ctx, s.read)
		cur := ""
		if err == nil {
			cur, err = s.value(lines)
		}
		if err != nil {
			if errors.Is(err, at.ErrClosed) || ctx.Err() != nil {
				return res, fmt.Errorf("bg96: profile: read %s: %w", s.name, err)
			}
			st.Error = err.Error()
			res.Settings = append(res.Settings, st)
			errs = append(errs, fmt.Errorf("read %s: %w", s.name, err))
			continue
		}
		want := s.want(cur)
		same := s.same
		if same == nil {
			same = func(a, b string) bool { return a == b }
		}
		st.Want, st.Actual = want, cur
		if want != "" && !same(cur, want) {
			if _, err := c.Command(ctx, s.write(want)); err != nil {
				if errors.Is(err, at.ErrClosed) || ctx.Err() != nil {
					return res, fmt.Errorf("bg96: profile: write %s: %w", s.name, err)
				}
				st.Error = err.Error()
				errs = append(errs, fmt.Errorf("write %s: %w", s.name, err))
			} else {
				ch := Change{Setting: s.name, From: cur, To: want}
				st.Actual = want
				if s.secret {
					ch.From, ch.To = "", ""
				}
				res.Changes = append(res.Changes, ch)
				restart = restart || s.restart
			}
		}
		if s.secret {
			st.Want, st.Actual = redact(st.Want), redact(st.Actual)
		}
		res.Settings = append(res.Settings, st)
	}
	if restart {
		m := New(c)
		if err := m.SetFunctionality(ctx, FunMinimum); err != nil {
			return res, fmt.Errorf("bg96: profile: radio off: %w", err)
		}
		if err := m.SetFunctionality(ctx, FunFull); err != nil {
			return res, fmt.Errorf("bg96: profile: radio on: %w", err)
		}
		res.Restarted = true
	}
	if len(errs) > 0 {
		return res, fmt.Errorf("bg96: profile: %w", errors.Join(errs...))
	}
	return res, nil
}

// redact keeps an auth setting's type and user and hides the password.
func redact(v string) string {
	f := strings.SplitN(v, ",", 3)
	if len(f) != 3 {
		return v
	}
	if f[2] != "" {
		f[2] = "***"
	}
	return strings.Join(f, ",")
}
