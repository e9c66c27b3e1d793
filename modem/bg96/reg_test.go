package bg96

import (
	"encoding/json"
	"testing"
)

func TestParseReg(t *testing.T) {
	for _, tc := range []struct {
		line    string
		form    RegForm
		want    Reg
		wantErr string
	}{
		// EP06 (luci-app-modeminfo #14): CS denied while PS and EPS are registered.
		{"+CREG: 2,3", RegQuery, Reg{Domain: DomainCS, N: ptr(2), Stat: RegDenied}, ""},
		{`+CGREG: 2,1,"2616","DDAEA01",7`, RegQuery, Reg{Domain: DomainGPRS, N: ptr(2), Stat: RegHome, LAC: ptr[uint32](0x2616), CI: ptr[uint32](0xDDAEA01), AcT: ptr(AcTLTE)}, ""},
		{`+CEREG: 2,1,"2616","DDAEA01",7`, RegQuery, Reg{Domain: DomainEPS, N: ptr(2), Stat: RegHome, LAC: ptr[uint32](0x2616), CI: ptr[uint32](0xDDAEA01), AcT: ptr(AcTLTE)}, ""},
		// BG96 (johncobb/catm1_bg96): n=4 with RAC, reject cause and PSM timers after AcT.
		{`+CGREG: 4,5,"66C0","1042","0",,,,"00000000","01100000","00000000"`, RegQuery, Reg{Domain: DomainGPRS, N: ptr(4), Stat: RegRoaming, LAC: ptr[uint32](0x66C0), CI: ptr[uint32](0x1042), AcT: ptr(AcTGSM)}, ""},
		{"+CGREG: 0,5", RegQuery, Reg{Domain: DomainGPRS, N: ptr(0), Stat: RegRoaming}, ""},
		{"+CREG: 0,5", RegQuery, Reg{Domain: DomainCS, N: ptr(0), Stat: RegRoaming}, ""},
		{" +CREG: 0,5", RegQuery, Reg{Domain: DomainCS, N: ptr(0), Stat: RegRoaming}, ""},
		{"+CGREG: 0,2", RegQuery, Reg{Domain: DomainGPRS, N: ptr(0), Stat: RegSearching}, ""}, // EC21, WioLTEforArduino #34
		{"+CEREG: 0,2", RegQuery, Reg{Domain: DomainEPS, N: ptr(0), Stat: RegSearching}, ""},
		{"+CEREG: 2,4", RegQuery, Reg{Domain: DomainEPS, N: ptr(2), Stat: RegUnknown}, ""},
		{`+CEREG: 2,1,,,8`, RegQuery, Reg{Domain: DomainEPS, N: ptr(2), Stat: RegHome, AcT: ptr(AcTCatM1)}, ""},
		{`+CEREG: 2,5,"1A2B","01A2B3C4",9`, RegQuery, Reg{Domain: DomainEPS, N: ptr(2), Stat: RegRoaming, LAC: ptr[uint32](0x1A2B), CI: ptr[uint32](0x1A2B3C4), AcT: ptr(AcTNBIoT)}, ""},
		// The same text means different things in the two forms.
		{"+CREG: 1,5", RegQuery, Reg{Domain: DomainCS, N: ptr(1), Stat: RegRoaming}, ""},
		{"+CREG: 1,5", RegURC, Reg{Domain: DomainCS, Stat: RegHome, LAC: ptr[uint32](5)}, ""},
		{`+CEREG: 1,"2616","DDAEA01",8`, RegURC, Reg{Domain: DomainEPS, Stat: RegHome, LAC: ptr[uint32](0x2616), CI: ptr[uint32](0xDDAEA01), AcT: ptr(AcTCatM1)}, ""},
		{"+CEREG: 2", RegURC, Reg{Domain: DomainEPS, Stat: RegSearching}, ""},
		{"+CREG: 2", RegQuery, Reg{}, "without <stat>"},
		{"+CREG: 0,12", RegQuery, Reg{}, "stat 12"},
		{"+CREG: 0,-1", RegQuery, Reg{}, "stat -1"},
		{`+CEREG: 2,1,"XYZ","1",7`, RegQuery, Reg{}, "lac"},
		{`+CEREG: 2,1,"1","1FFFFFFF",7`, RegQuery, Reg{}, "ci"},
		{`+CEREG: 2,1,"1","1",14`, RegQuery, Reg{}, "AcT 14"},
		{`+CEREG: x,1`, RegQuery, Reg{}, "n \"x\""},
		{"+COPS: 0", RegQuery, Reg{}, "not a +CREG"},
		{"+CREG:", RegQuery, Reg{}, "no value"},
	} {
		got, err := ParseReg(tc.line, tc.form)
		check(t, tc.line, got, err, tc.want, tc.wantErr)
	}
	if _, err := ParseReg("+CREG: 1", RegForm(9)); err == nil {
		t.Error("an unknown form was accepted")
	}
}

func TestOverall(t *testing.T) {
	reg := func(d Domain, s RegStat) *Reg { return &Reg{Domain: d, Stat: s} }
	for _, tc := range []struct {
		name string
		r    Registration
		stat RegStat
		dom  Domain
	}{
		// Cat-M-only SIM: CS denied or searching, EPS registered.
		{"catm cs denied", Registration{CS: reg(DomainCS, RegDenied), GPRS: reg(DomainGPRS, RegNotSearching), EPS: reg(DomainEPS, RegHome)}, RegHome, DomainEPS},
		{"catm cs searching", Registration{CS: reg(DomainCS, RegSearching), EPS: reg(DomainEPS, RegRoaming)}, RegRoaming, DomainEPS},
		// GSM fallback (johncobb/catm1_bg96): only GPRS and CS.
		{"gsm fallback", Registration{CS: reg(DomainCS, RegRoaming), GPRS: reg(DomainGPRS, RegRoaming), EPS: reg(DomainEPS, RegSearching)}, RegRoaming, DomainGPRS},
		{"cs only", Registration{CS: reg(DomainCS, RegHome), GPRS: reg(DomainGPRS, RegSearching), EPS: reg(DomainEPS, RegSearching)}, RegHome, DomainCS},
		// Nothing registered: EPS decides, so a CS "denied" on a Cat-M SIM
		// does not mask that LTE is still searching.
		{"searching", Registration{CS: reg(DomainCS, RegDenied), EPS: reg(DomainEPS, RegSearching)}, RegSearching, DomainEPS},
		{"eps unreadable", Registration{CS: reg(DomainCS, RegDenied)}, RegDenied, DomainCS},
		{"nothing", Registration{}, RegUnknown, ""},
	} {
		stat, dom := tc.r.Overall()
		if stat != tc.stat || dom != tc.dom {
			t.Errorf("%s: Overall() = %v, %q; want %v, %q", tc.name, stat, dom, tc.stat, tc.dom)
		}
		if tc.r.Registered() != tc.stat.Registered() {
			t.Errorf("%s: Registered() disagrees with Overall", tc.name)
		}
	}
}

func TestRegStatText(t *testing.T) {
	for s := RegNotSearching; s <= RegRoamingCSFBNotPref; s++ {
		b, err := s.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back RegStat
		if err := back.UnmarshalText(b); err != nil || back != s {
			t.Errorf("round trip of %d via %q gave %d, %v", s, b, back, err)
		}
	}
	for a := AcTGSM; a <= AcTENDC; a++ {
		b, _ := a.MarshalText()
		var back AcT
		if err := back.UnmarshalText(b); err != nil || back != a {
			t.Errorf("round trip of AcT %d via %q gave %d, %v", a, b, back, err)
		}
	}
	if RegStat(42).String() != "stat(42)" || AcT(-1).String() != "act(-1)" {
		t.Errorf("out-of-range names: %s %s", RegStat(42), AcT(-1))
	}
	var s RegStat
	if err := json.Unmarshal([]byte(`"bogus"`), &s); err == nil {
		t.Error("unmarshal of a bogus state succeeded")
	}
	b, _ := json.Marshal(Reg{Domain: DomainEPS, Stat: RegHome, AcT: ptr(AcTCatM1)})
	if got, want := string(b), `{"domain":"CEREG","stat":"home","act":"CAT-M1"}`; got != want {
		t.Errorf("JSON = %s, want %s", got, want)
	}
}
