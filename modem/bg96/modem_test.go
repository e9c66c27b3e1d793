package bg96

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"cellagent/modem/at"
)

// Answers in the byte shapes Quectel modems print: echo with a doubled CR
// ("AT+CSQ\r\r\n"), blank lines around the final.
var bg96Script = map[string][]string{
	"ATI":        {"ATI\r\r\nQuectel\r\nBG96\r\nRevision: BG96MAR02A07M1G\r\n\r\nOK\r\n"},
	"AT+CGSN":    {"\r\n866425030000000\r\n\r\nOK\r\n"},
	"AT+QCCID":   {"AT+QCCID\r\r\n+QCCID: 8991000903555272977F\r\n\r\nOK\r\n"},
	"AT+CIMI":    {"\r\n901288000000001\r\n\r\nOK\r\n"},
	"AT+QGMR":    {"\r\nBG96MAR02A07M1G_01.016.01.016\r\n\r\nOK\r\n"},
	"AT+CGMR":    {"\r\nBG96MAR02A10M1G\r\n\r\nOK\r\n"},
	"AT+CFUN?":   {"\r\n+CFUN: 1\r\n\r\nOK\r\n"},
	"AT+CSQ":     {"AT+CSQ\r\r\n+CSQ: 18,99\r\n\r\nOK\r\n"},
	"AT+QCSQ":    {"AT+QCSQ\r\r\n+QCSQ: \"eMTC\",-57,-77,225,-7\r\n\r\nOK\r\n"},
	"AT+CREG?":   {"\r\n+CREG: 2,3\r\n\r\nOK\r\n"},
	"AT+CGREG?":  {"\r\n+CGREG: 2,1,\"2616\",\"DDAEA01\",7\r\n\r\nOK\r\n"},
	"AT+CEREG?":  {"\r\n+CEREG: 2,1,\"2616\",\"DDAEA01\",7\r\n\r\nOK\r\n"},
	"AT+COPS?":   {"\r\n+COPS: 0,0,\"NTT DOCOMO\",7\r\n\r\nOK\r\n"},
	"AT+QNWINFO": {"\r\n+QNWINFO: \"CAT-M1\",\"23203\",\"LTE BAND 20\",6400\r\n\r\nOK\r\n"},
	"AT+CGATT?":  {"\r\n+CGATT: 1\r\n\r\nOK\r\n"},
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestIdentity(t *testing.T) {
	a, _ := newLink(t, bg96Script)
	id, err := New(a).Identity(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{
		IMEI: "866425030000000", ICCID: "8991000903555272977", IMSI: "901288000000001",
		Firmware: "BG96MAR02A07M1G_01.016.01.016",
		Product:  Product{Manufacturer: "Quectel", Model: "BG96", Revision: "BG96MAR02A07M1G"},
	}
	if id != want {
		t.Errorf("Identity = %+v, want %+v", id, want)
	}
}

func TestIdentityFallsBackToCGMRAndKeepsPartial(t *testing.T) {
	a, _ := newLink(t, map[string][]string{
		"ATI":      bg96Script["ATI"],
		"AT+CGSN":  bg96Script["AT+CGSN"],
		"AT+QCCID": {"\r\n+CME ERROR: SIM not inserted\r\n"},
		"AT+CIMI":  {"\r\n+CME ERROR: 10\r\n"},
		"AT+QGMR":  {"\r\nERROR\r\n"},
		"AT+CGMR":  {"at+cgmr\r\r\nBG96MAR02A10M1G\r\n\r\nOK\r\n"},
	})
	id, err := New(a).Identity(ctxT(t))
	if id.IMEI != "866425030000000" || id.Firmware != "BG96MAR02A10M1G" || id.Model != "BG96" {
		t.Errorf("partial identity = %+v", id)
	}
	if id.ICCID != "" || id.IMSI != "" {
		t.Errorf("ICCID/IMSI should be empty: %+v", id)
	}
	var cme *at.CMEError
	if !errors.As(err, &cme) || cme.Code != 10 {
		t.Fatalf("error %v does not carry +CME ERROR 10", err)
	}
	for _, want := range []string{"read ICCID", "read IMSI"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestSignalWithInterleavedURC(t *testing.T) {
	s := map[string][]string{
		// A URC between echo and answer, as in TinyGSM #157.
		"AT+CSQ":  {"AT+CSQ\r\r\n+QIURC: \"pdpdeact\",1\r\n+CSQ: 13,99\r\n\r\nOK\r\n"},
		"AT+QCSQ": {"\r\n+QCSQ: \"CAT-M1\",-33,-53,250,-5\r\n\r\nOK\r\n"},
	}
	a, _ := newLink(t, s)
	got, err := New(a).Signal(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	want := Signal{
		CSQ:  &CSQ{RSSI: ptr(-87)},
		QCSQ: &QCSQ{Mode: ModeCatM1, RSSI: ptr(-33), RSRP: ptr(-53), SINR: ptr(30.0), RSRQ: ptr(-5)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Signal = %s, want %s", dump(got), dump(want))
	}
}

// A URC with the query's own prefix that lands just before the answer (the
// "+CREG: 0" a BG96 prints right after AT+CFUN=4's OK) goes to the command:
// the answer is the last line, not the first.
func TestRegistrationURCBeforeAnswer(t *testing.T) {
	s := map[string][]string{
		"AT+CREG?":  {"\r\n+CREG: 0\r\n\r\n+CREG: 2,0\r\n\r\nOK\r\n"},
		"AT+CGREG?": {"\r\n+CGREG: 1,\"2616\",\"DDAEA01\",7\r\n\r\n+CGREG: 2,4\r\n\r\nOK\r\n"},
		"AT+CEREG?": {"\r\n+CEREG: 2,1,\"2616\",\"DDAEA01\",7\r\n\r\nOK\r\n"},
	}
	a, _ := newLink(t, s)
	r, err := New(a).Registration(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if r.CS == nil || r.CS.Stat != RegNotSearching || r.GPRS == nil || r.GPRS.Stat != RegUnknown || r.EPS == nil || r.EPS.Stat != RegHome {
		t.Errorf("Registration = %s", dump(r))
	}
}

func TestRegistrationCatMOnlySIM(t *testing.T) {
	a, _ := newLink(t, bg96Script)
	r, err := New(a).Registration(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if r.CS == nil || r.CS.Stat != RegDenied {
		t.Errorf("CREG = %s", dump(r.CS))
	}
	if !r.Registered() {
		t.Error("not registered although CEREG says home")
	}
	if s, d := r.Overall(); s != RegHome || d != DomainEPS {
		t.Errorf("Overall = %v %v", s, d)
	}
}

func TestSmallQueries(t *testing.T) {
	a, _ := newLink(t, bg96Script)
	m := New(a)
	ctx := ctxT(t)
	op, err := m.Operator(ctx)
	if err != nil || op.Name != "NTT DOCOMO" || *op.AcT != AcTLTE {
		t.Errorf("Operator = %s, %v", dump(op), err)
	}
	ni, err := m.NetworkInfo(ctx)
	if err != nil || ni.Band != "LTE BAND 20" || *ni.Channel != 6400 {
		t.Errorf("NetworkInfo = %s, %v", dump(ni), err)
	}
	if att, err := m.Attached(ctx); err != nil || !att {
		t.Errorf("Attached = %v, %v", att, err)
	}
	if f, err := m.Functionality(ctx); err != nil || f != FunFull {
		t.Errorf("Functionality = %v, %v", f, err)
	}
}

func TestNoAnswerLine(t *testing.T) {
	// The +CMGR-answers-only-OK fault (bg96emu.CMGROnlyOK), on a query.
	a, _ := newLink(t, map[string][]string{"AT+CSQ": {"\r\nOK\r\n"}})
	_, err := New(a).Signal(ctxT(t))
	if err == nil || !strings.Contains(err.Error(), `no "+CSQ:" line`) {
		t.Errorf("err = %v", err)
	}
}

func TestCommandsSent(t *testing.T) {
	ok := []string{"\r\nOK\r\n"}
	a, r := newLink(t, map[string][]string{
		"AT+CGATT=1": ok, "AT+CGATT=0": ok, "AT+CFUN=4": ok, "AT+CFUN=1": ok,
		"AT+CFUN=0": ok, "AT+CFUN=1,1": {"AT+CFUN=1,1\r\r\nOK\r\n\r\nPOWERED DOWN\r\n"},
		"AT+QPOWD=1": ok,
	})
	m := New(a)
	ctx := ctxT(t)
	for _, f := range []func(context.Context) error{
		func(ctx context.Context) error { return m.SetAttach(ctx, true) },
		func(ctx context.Context) error { return m.SetAttach(ctx, false) },
		m.RadioOff, m.RadioOn,
		func(ctx context.Context) error { return m.SetFunctionality(ctx, FunMinimum) },
		m.Reboot, m.PowerDown,
	} {
		if err := f(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"AT+CGATT=1", "AT+CGATT=0", "AT+CFUN=4", "AT+CFUN=1", "AT+CFUN=0", "AT+CFUN=1,1", "AT+QPOWD=1"}
	if got := r.commands(); !reflect.DeepEqual(got, want) {
		t.Errorf("sent %q, want %q", got, want)
	}
	if err := m.SetFunctionality(ctx, 7); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("CFUN=7: %v", err)
	}
	a2, _ := newLink(t, map[string][]string{"AT+CGATT=1": {"\r\n+CME ERROR: 30\r\n"}})
	err := New(a2).SetAttach(ctx, true)
	var cme *at.CMEError
	if !errors.As(err, &cme) || cme.Code != 30 || !strings.Contains(err.Error(), "set attach true") {
		t.Errorf("SetAttach error = %v", err)
	}
}

func TestPowerDownAndWait(t *testing.T) {
	// OK and the URC in one write: the watch must be armed before sending.
	a, _ := newLink(t, map[string][]string{"AT+QPOWD=1": {"\r\nOK\r\n\r\nPOWERED DOWN\r\n"}})
	if err := New(a).PowerDownAndWait(ctxT(t), a); err != nil {
		t.Fatal(err)
	}
	a2, _ := newLink(t, map[string][]string{"AT+QPOWD=1": {"\r\nOK\r\n"}})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := New(a2).PowerDownAndWait(ctx, a2)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "POWERED DOWN") {
		t.Errorf("err = %v", err)
	}
}

func TestStatus(t *testing.T) {
	s := map[string][]string{}
	for k, v := range bg96Script {
		s[k] = v
	}
	s["AT+QCCID"] = []string{"\r\n+CME ERROR: 10\r\n"}
	s["AT+QNWINFO"] = []string{"\r\n+QNWINFO: No Service\r\n\r\nOK\r\n"}
	s["AT+CSQ"] = []string{"\r\n+CSQ: 99,99\r\n\r\nOK\r\n"}
	s["AT+QCSQ"] = []string{"\r\n+QCSQ: \"GSM\",-48\r\n\r\nOK\r\n"}
	s["AT+CGATT?"] = []string{"\r\n+CGATT: 7\r\n\r\nOK\r\n"}
	a, _ := newLink(t, s)
	st := New(a).Status(ctxT(t))
	if len(st.Errors) != 2 || !strings.Contains(st.Errors["iccid"], "SIM not inserted") || !strings.Contains(st.Errors["attached"], "+CGATT: 7") {
		t.Errorf("Errors = %q", st.Errors)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("status JSON:\n%s", b)
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"identity": map[string]any{
			"imei": "866425030000000", "imsi": "901288000000001", "firmware": "BG96MAR02A07M1G_01.016.01.016",
			"manufacturer": "Quectel", "model": "BG96", "revision": "BG96MAR02A07M1G",
		},
		"functionality": 1.0,
		"registration": map[string]any{
			"creg":  map[string]any{"domain": "CREG", "n": 2.0, "stat": "denied"},
			"cgreg": map[string]any{"domain": "CGREG", "n": 2.0, "stat": "home", "lac": "2616", "ci": "DDAEA01", "act": "LTE"},
			"cereg": map[string]any{"domain": "CEREG", "n": 2.0, "stat": "home", "lac": "2616", "ci": "DDAEA01", "act": "LTE"},
		},
		"registered": true, "reg_state": "home", "reg_domain": "CEREG",
		"operator": map[string]any{"mode": 0.0, "format": 0.0, "name": "NTT DOCOMO", "act": "LTE"},
		"network":  map[string]any{"no_service": true},
		// CSQ 99,99: both unknown, so an empty object rather than numbers.
		"signal": map[string]any{"csq": map[string]any{}, "qcsq": map[string]any{"mode": "GSM", "rssi_dbm": -48.0}},
		"errors": map[string]any{"iccid": st.Errors["iccid"], "attached": st.Errors["attached"]},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("status JSON\n got %v\nwant %v", got, want)
	}
}

func TestStatusClosedPort(t *testing.T) {
	a, _ := newLink(t, nil)
	_ = a.Close()
	st := New(a).Status(ctxT(t))
	if len(st.Errors) != 14 {
		t.Errorf("want 14 errors on a closed port, got %d: %q", len(st.Errors), st.Errors)
	}
	if st.Registered || st.RegState != nil {
		t.Errorf("closed port judged registered: %+v", st)
	}
}

// StatusWith asks for none of the identity queries: the script lacks
// them, so any of them would fail and show in Errors.
func TestStatusWithKnownIdentity(t *testing.T) {
	s := map[string][]string{}
	for k, v := range bg96Script {
		switch k {
		case "AT+CGSN", "AT+QCCID", "AT+CIMI", "AT+QGMR", "ATI", "AT+CGMR":
			continue
		}
		s[k] = v
	}
	a, _ := newLink(t, s)
	id := Identity{IMEI: "866425030000000", ICCID: "89882280666012345678"}
	st := New(a).StatusWith(ctxT(t), id)
	if len(st.Errors) != 0 || st.Identity != id || !st.Registered || st.Signal.QCSQ == nil {
		t.Errorf("status %+v", st)
	}
}
