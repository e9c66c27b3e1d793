package bg96

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// check runs one parser case: wantErr is a substring of the expected error,
// or "" for success with want.
func check[T any](t *testing.T, name string, got T, err error, want T, wantErr string) {
	t.Helper()
	if wantErr != "" {
		if err == nil {
			t.Errorf("%s: got %+v, want error containing %q", name, got, wantErr)
			return
		}
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%s: error %v is not a *ParseError", name, err)
		}
		if !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s: error %q does not contain %q", name, err, wantErr)
		}
		return
	}
	if err != nil {
		t.Errorf("%s: unexpected error %v", name, err)
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", name, dump(got), dump(want))
	}
}

// dump shows pointers' targets, which %+v does not, so a failing case
// shows values.
func dump(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}

func TestParseCSQ(t *testing.T) {
	for _, tc := range []struct {
		line    string
		want    CSQ
		wantErr string
	}{
		{"+CSQ: 18,99", CSQ{RSSI: ptr(-77)}, ""},              // an EM06 mock
		{"+CSQ: 13,99", CSQ{RSSI: ptr(-87)}, ""},              // BG96, johncobb/catm1_bg96
		{"+CSQ: 31,99", CSQ{RSSI: ptr(-51)}, ""},              // EP06, luci-app-modeminfo #14: saturated
		{" +CSQ: 28,0", CSQ{RSSI: ptr(-57), BER: ptr(0)}, ""}, // M26, warthog618/modem #17: indented
		{"+CSQ: 0,7", CSQ{RSSI: ptr(-113), BER: ptr(7)}, ""},
		{"+CSQ: 1,99", CSQ{RSSI: ptr(-111)}, ""},
		{"+CSQ: 2,99", CSQ{RSSI: ptr(-109)}, ""},
		{"+CSQ: 30,99", CSQ{RSSI: ptr(-53)}, ""},
		{"+CSQ: 99,99", CSQ{}, ""},
		{"+csq:  99 , 99 ", CSQ{}, ""},
		{"+CSQ: 32,99", CSQ{}, "rssi 32"},
		{"+CSQ: 18,8", CSQ{}, "ber 8"},
		{"+CSQ: -1,99", CSQ{}, "rssi -1"},
		{"+CSQ: 18", CSQ{}, "want 2 values"},
		{"+CSQ: 18,99,1", CSQ{}, "want 2 values"},
		{"+CSQ: ", CSQ{}, "no value"},
		{"+CSQ: a,99", CSQ{}, "not a number"},
		{"+CSQ: 18,", CSQ{}, "not a number"},
		{"+CREG: 0,1", CSQ{}, "expected prefix"},
		{"", CSQ{}, "expected prefix"},
	} {
		got, err := ParseCSQ(tc.line)
		check(t, tc.line, got, err, tc.want, tc.wantErr)
	}
}

func TestParseQCSQ(t *testing.T) {
	for _, tc := range []struct {
		line    string
		want    QCSQ
		wantErr string
	}{
		// BG96 on T-Mobile Austria (magentabusiness/IoT-Quickstart, Quectel_BG96
		// bearer notes): SINR 250 is the top of the scale.
		{`+QCSQ: "CAT-M1",-33,-53,250,-5`, QCSQ{Mode: ModeCatM1, RSSI: ptr(-33), RSRP: ptr(-53), SINR: ptr(30.0), RSRQ: ptr(-5)}, ""},
		{`+QCSQ: "CAT-NB1",-80,-90,82,-10`, QCSQ{Mode: ModeNBIoT, RSSI: ptr(-80), RSRP: ptr(-90), SINR: ptr(-3.6), RSRQ: ptr(-10)}, ""},
		{`+QCSQ: "GSM",-48`, QCSQ{Mode: ModeGSM, RSSI: ptr(-48)}, ""},
		// The "eMTC" spelling (BG95, and SORACOM's BG96 sample).
		{`+QCSQ: "eMTC",-57,-77,225,-7`, QCSQ{Mode: ModeCatM1, RSSI: ptr(-57), RSRP: ptr(-77), SINR: ptr(25.0), RSRQ: ptr(-7)}, ""},
		{`+QCSQ: "eMTC",-84,-91,165,-6`, QCSQ{Mode: ModeCatM1, RSSI: ptr(-84), RSRP: ptr(-91), SINR: ptr(13.0), RSRQ: ptr(-6)}, ""},
		{`+QCSQ: "NBIoT",-80,-90,0,-10`, QCSQ{Mode: ModeNBIoT, RSSI: ptr(-80), RSRP: ptr(-90), SINR: ptr(-20.0), RSRQ: ptr(-10)}, ""},
		// EP06 (luci-app-modeminfo #14): an rssi of +52 dBm is not physical, so unknown.
		{`+QCSQ: "LTE",52,-83,207,-14`, QCSQ{Mode: ModeLTE, RSRP: ptr(-83), SINR: ptr(21.4), RSRQ: ptr(-14)}, ""},
		{`+QCSQ: "NOSERVICE"`, QCSQ{Mode: ModeNoService}, ""},
		{`+QCSQ: NOSERVICE`, QCSQ{Mode: ModeNoService}, ""},
		{`+QCSQ: "WCDMA",-65,-70,-5`, QCSQ{Mode: ModeWCDMA, RSSI: ptr(-65), RSCP: ptr(-70), EcIo: ptr(-5)}, ""},
		// The FreeRTOS bug: a GSM answer has one value, the rest are unknown.
		{`+QCSQ: "CAT-M1",-60`, QCSQ{Mode: ModeCatM1, RSSI: ptr(-60)}, ""},
		{`+QCSQ: "CAT-M1",-60,,,-9`, QCSQ{Mode: ModeCatM1, RSSI: ptr(-60), RSRQ: ptr(-9)}, ""},
		{`+QCSQ: "CAT-M1", -60 , -70 , 251 , -9`, QCSQ{Mode: ModeCatM1, RSSI: ptr(-60), RSRP: ptr(-70), RSRQ: ptr(-9)}, ""},
		{`+QCSQ: "GSM",-48,1`, QCSQ{}, "at most 1 values"},
		{`+QCSQ: "5G",-48`, QCSQ{}, "unknown system mode"},
		{`+QCSQ: "CAT-M1",x`, QCSQ{}, "rssi \"x\" is not a number"},
		{`+QCSQ: "CAT-M1,-33`, QCSQ{}, "unterminated quote"},
		{`+QCSQ:`, QCSQ{}, "no value"},
		{`+QCSQ: "NOSERVICE","GSM","CAT-M1","CAT-NB1"`, QCSQ{}, "at most 0 values"},
	} {
		got, err := ParseQCSQ(tc.line)
		check(t, tc.line, got, err, tc.want, tc.wantErr)
	}
}

func TestParseCOPS(t *testing.T) {
	for _, tc := range []struct {
		line    string
		want    Operator
		wantErr string
	}{
		{`+COPS: 0,0,"T-Mobile Hologram",0`, Operator{Format: ptr(0), Name: "T-Mobile Hologram", AcT: ptr(AcTGSM)}, ""},
		{`+COPS: 0,2,"25011",7`, Operator{Format: ptr(2), Name: "25011", AcT: ptr(AcTLTE)}, ""},
		{`+COPS: 0,0,"AT&T",7`, Operator{Format: ptr(0), Name: "AT&T", AcT: ptr(AcTLTE)}, ""},
		{`+COPS: 0,0,"NTT DOCOMO",7`, Operator{Format: ptr(0), Name: "NTT DOCOMO", AcT: ptr(AcTLTE)}, ""},
		{`+COPS: 1,0,"Op, with comma",8`, Operator{Mode: 1, Format: ptr(0), Name: "Op, with comma", AcT: ptr(AcTCatM1)}, ""},
		{`+COPS: 0,0,"TMA"`, Operator{Format: ptr(0), Name: "TMA"}, ""},
		{`+COPS: 0`, Operator{}, ""},
		{`+COPS: 2`, Operator{Mode: 2}, ""},
		{`+COPS: 5`, Operator{}, "mode 5"},
		{`+COPS: 0,3,"x",7`, Operator{}, "format 3"},
		{`+COPS: 0,0,"x",99`, Operator{}, "AcT 99"},
		{`+COPS: 0,0,"x",7,1`, Operator{}, "at most 4"},
		// The test form lists operators; it is not a query answer.
		{`+COPS: (1,"T-Mobile A","TMA","23203",9),,(0,1,2,3,4),(0,1,2)`, Operator{}, "at most 4"},
	} {
		got, err := ParseCOPS(tc.line)
		check(t, tc.line, got, err, tc.want, tc.wantErr)
	}
}

func TestParseQNWINFO(t *testing.T) {
	for _, tc := range []struct {
		line    string
		want    NetInfo
		wantErr string
	}{
		{`+QNWINFO: "CAT-NB1","23203","LTE BAND 8",3547`, NetInfo{AcT: "CAT-NB1", Operator: "23203", Band: "LTE BAND 8", Channel: ptr(3547)}, ""},
		{`+QNWINFO: "EDGE","23203","GSM 900",8`, NetInfo{AcT: "EDGE", Operator: "23203", Band: "GSM 900", Channel: ptr(8)}, ""},
		{`+QNWINFO: "CAT-M1","23203","LTE BAND 20",6400`, NetInfo{AcT: "CAT-M1", Operator: "23203", Band: "LTE BAND 20", Channel: ptr(6400)}, ""},
		{`+QNWINFO: "FDD LTE","25011","LTE BAND 3",1602`, NetInfo{AcT: "FDD LTE", Operator: "25011", Band: "LTE BAND 3", Channel: ptr(1602)}, ""},
		{`+QNWINFO: "EDGE","310260","GSM 1900",613`, NetInfo{AcT: "EDGE", Operator: "310260", Band: "GSM 1900", Channel: ptr(613)}, ""},
		{`+QNWINFO: "NBIoT","21670","LTE BAND 1",0`, NetInfo{AcT: "NBIoT", Operator: "21670", Band: "LTE BAND 1", Channel: ptr(0)}, ""},
		{`+QNWINFO: No Service`, NetInfo{NoService: true}, ""},
		{`+QNWINFO: "No Service"`, NetInfo{NoService: true}, ""},
		{`+QNWINFO: "CAT-M1","23203","LTE BAND 20",`, NetInfo{AcT: "CAT-M1", Operator: "23203", Band: "LTE BAND 20"}, ""},
		{`+QNWINFO: "CAT-M1","23203","LTE BAND 20"`, NetInfo{}, "want 4 values"},
		{`+QNWINFO: "CAT-M1","T-Mobile","LTE BAND 20",1`, NetInfo{}, "not numeric"},
		{`+QNWINFO: "CAT-M1","23203","LTE BAND 20",ch`, NetInfo{}, "not a number"},
		{`+QNWINFO: ,"23203","LTE BAND 20",1`, NetInfo{}, "empty access technology"},
	} {
		got, err := ParseQNWINFO(tc.line)
		check(t, tc.line, got, err, tc.want, tc.wantErr)
	}
}

func TestParseSmall(t *testing.T) {
	type result struct {
		v   any
		err error
	}
	wrap := func(v any, err error) result { return result{v, err} }
	for _, tc := range []struct {
		name    string
		got     result
		want    any
		wantErr string
	}{
		{"cgatt 1", wrap(ParseCGATT("+CGATT: 1")), true, ""},
		{"cgatt 0", wrap(ParseCGATT("+CGATT: 0")), false, ""},
		{"cgatt 2", wrap(ParseCGATT("+CGATT: 2")), nil, "neither 0 nor 1"},
		{"cgatt 1,1", wrap(ParseCGATT("+CGATT: 1,1")), nil, "want 1 value"},
		{"cfun 1", wrap(ParseCFUN("+CFUN: 1")), FunFull, ""},
		{"cfun 4", wrap(ParseCFUN("+CFUN: 4")), FunRFOff, ""},
		{"cfun 0,0", wrap(ParseCFUN("+CFUN: 0,0")), FunMinimum, ""},
		{"cfun -1", wrap(ParseCFUN("+CFUN: -1")), nil, "outside"},
		{"cfun x", wrap(ParseCFUN("+CFUN: x")), nil, "not a number"},
		{"cpin ready", wrap(ParseCPIN("+CPIN: READY")), PINReady, ""},
		{"cpin sim pin", wrap(ParseCPIN("+CPIN: SIM PIN")), PINState("SIM PIN"), ""},
		{"cpin ph-sim", wrap(ParseCPIN(`+CPIN: "PH-SIM PIN"`)), PINState("PH-SIM PIN"), ""},
		{"cpin empty", wrap(ParseCPIN(`+CPIN: ""`)), nil, "want one code"},
		{"cpin junk", wrap(ParseCPIN("+CPIN: READY;")), nil, "unexpected characters"},
		{"qccid F pad", wrap(ParseQCCID("+QCCID: 8910390000040102089F")), "8910390000040102089", ""},
		{"qccid ec200t", wrap(ParseQCCID("+QCCID: 8991000903555272977F")), "8991000903555272977", ""},
		{"qccid 20", wrap(ParseQCCID("+QCCID: 89882280666012345678")), "89882280666012345678", ""},
		{"qccid short", wrap(ParseQCCID("+QCCID: 891039000004010208")), nil, "not 19-20 digits"},
		{"qccid letters", wrap(ParseQCCID("+QCCID: 89103900000401020A9F")), nil, "not 19-20 digits"},
		{"qccid F only", wrap(ParseQCCID("+QCCID: FFFF")), nil, "not 19-20 digits"},
		{"imei bare", wrap(ParseIMEI("866425030000000")), "866425030000000", ""},
		{"imei cgsn", wrap(ParseIMEI(`+CGSN: "866425030000000"`)), "866425030000000", ""},
		{"imei short", wrap(ParseIMEI("86642503000000")), nil, "not 15 digits"},
		{"imei text", wrap(ParseIMEI("OK")), nil, "not 15 digits"},
		{"imsi", wrap(ParseIMSI("901288000000001")), "901288000000001", ""},
		{"imsi 14", wrap(ParseIMSI("23203123456789")), "23203123456789", ""},
		{"imsi bad", wrap(ParseIMSI("9012880000000x1")), nil, "not 14-15 digits"},
		{"cgmr", wrap(ParseFirmware("BG96MAR02A10M1G")), "BG96MAR02A10M1G", ""},
		{"qgmr", wrap(ParseFirmware("BG96MAR02A07M1G_01.016.01.016")), "BG96MAR02A07M1G_01.016.01.016", ""},
		{"revision", wrap(ParseFirmware("Revision: BG96MAR02A07M1G")), "BG96MAR02A07M1G", ""},
		{"firmware empty", wrap(ParseFirmware("  ")), nil, "1-64 characters"},
		{"firmware space", wrap(ParseFirmware("BG96 MAR")), nil, "unexpected characters"},
		{"ati bg96", wrap(ParseATI([]string{"Quectel", "BG96", "Revision: BG96MAR02A07M1G"})), Product{"Quectel", "BG96", "BG96MAR02A07M1G"}, ""},
		{"ati ec200t", wrap(ParseATI([]string{"Quectel", "EC200T", "Revision: EC200TCNHAR02A14M16"})), Product{"Quectel", "EC200T", "EC200TCNHAR02A14M16"}, ""},
		{"ati no revision", wrap(ParseATI([]string{"Quectel", "BG96"})), Product{Manufacturer: "Quectel", Model: "BG96"}, ""},
		{"ati one line", wrap(ParseATI([]string{"Quectel"})), nil, "got 1 lines"},
		{"ati none", wrap(ParseATI(nil)), nil, "got 0 lines"},
		{"ati bad third", wrap(ParseATI([]string{"Quectel", "BG96", "BG96MAR02A07M1G"})), nil, "Revision"},
		{"ati revision second", wrap(ParseATI([]string{"Quectel", "Revision: X"})), nil, "no model"},
	} {
		if tc.wantErr != "" {
			check(t, tc.name, tc.got.v, tc.got.err, nil, tc.wantErr)
			continue
		}
		check(t, tc.name, tc.got.v, tc.got.err, tc.want, "")
	}
}

func TestParseCSCA(t *testing.T) {
	for _, tc := range []struct {
		line, want string
		ok         bool
	}{
		{`+CSCA: "+491710760000",145`, "+491710760000", true},
		{`+CSCA: "",129`, "", true},
		{`+CSCA: "+882285000016860"`, "+882285000016860", true},
		{`+CSCA: "abc",129`, "", false},
		{`+CSCA: "+49",145,7`, "", false},
		{`+CSQ: 1,2`, "", false},
	} {
		got, err := ParseCSCA(tc.line)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseCSCA(%q) = %q, %v", tc.line, got, err)
		}
	}
}
