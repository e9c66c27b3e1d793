package bscemu

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"cellagent/transport/bsc/receiver"
)

const (
	iccid = "89882280000000000011"
	other = "89882280000000000029"
)

type fakeDevice struct {
	mu     sync.Mutex
	texts  [][2]string
	resets int
	fail   bool
	got    chan struct{}
}

func newFakeDevice() *fakeDevice { return &fakeDevice{got: make(chan struct{}, 16)} }

func (d *fakeDevice) ICCID() string { return iccid }

func (d *fakeDevice) DeliverText(from, text string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail {
		return io.ErrClosedPipe
	}
	d.texts = append(d.texts, [2]string{from, text})
	d.got <- struct{}{}
	return nil
}

func (d *fakeDevice) NetworkReset() {
	d.mu.Lock()
	d.resets++
	d.mu.Unlock()
	d.got <- struct{}{}
}

// appServer records forwarder requests, failing the first failFirst.
type appServer struct {
	*httptest.Server
	mu        sync.Mutex
	failFirst int
	calls     int
	got       chan appRequest
}

type appRequest struct {
	method string
	body   []byte
}

func newApp(t *testing.T, failFirst int) *appServer {
	a := &appServer{failFirst: failFirst, got: make(chan appRequest, 16)}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.calls++
		fail := a.calls <= a.failFirst
		a.mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("content type %q", r.Header.Get("Content-Type"))
		}
		a.got <- appRequest{r.Method, b}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(a.Close)
	return a
}

func wait[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("timed out")
		panic("unreachable")
	}
}

func newSim(t *testing.T, appURL string) (*Server, *httptest.Server) {
	t.Helper()
	s, err := New(Config{
		Users:      map[string]string{"admin": "secret"},
		SIMs:       []SIMConfig{{ICCID: iccid, MSISDN: "882285100000011", DataBytes: 1000, SMS: 10}, {ICCID: other}},
		AppURL:     appURL,
		ResetDelay: 20 * time.Millisecond,
		RetryBase:  5 * time.Millisecond,
		Control:    true,
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() { hs.Close(); s.Close() })
	return s, hs
}

func token(t *testing.T, base string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/management-api/oauth/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("admin", "secret")
	var out map[string]any
	if st := do(t, req, &out); st != 200 {
		t.Fatalf("token: %d", st)
	}
	if out["token_type"] != "bearer" || out["expires_in"] != 3599.0 || len(out["access_token"].(string)) != 36 {
		t.Fatalf("token answer %v", out)
	}
	return out["access_token"].(string)
}

func do(t *testing.T, req *http.Request, out any) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", req.Method, req.URL.Path, err, b)
		}
	}
	return resp.StatusCode
}

func api(t *testing.T, base, tok, method, path, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, base+"/management-api/v1"+path, strings.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return do(t, req, out)
}

func TestTokenEndpoint(t *testing.T) {
	_, hs := newSim(t, "")
	token(t, hs.URL)
	req, _ := http.NewRequest(http.MethodPost, hs.URL+"/management-api/oauth/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("admin", "nope")
	var out map[string]any
	if st := do(t, req, &out); st != 401 || !strings.Contains(out["message"].(string), "Auth Error") {
		t.Fatalf("bad credentials: %d %v", st, out)
	}
	req, _ = http.NewRequest(http.MethodPost, hs.URL+"/management-api/oauth/token", strings.NewReader("grant_type=password"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("admin", "secret")
	if st := do(t, req, nil); st != 400 {
		t.Fatalf("wrong grant: %d", st)
	}
}

func TestManagementEndpoints(t *testing.T) {
	s, hs := newSim(t, "")
	tok := token(t, hs.URL)
	if st := api(t, hs.URL, "", "GET", "/sims/"+iccid, "", nil); st != 401 {
		t.Fatalf("no token: %d", st)
	}
	if st := api(t, hs.URL, "not-a-token", "GET", "/sims", "", nil); st != 401 {
		t.Fatalf("bad token: %d", st)
	}
	var e map[string]any
	if st := api(t, hs.URL, tok, "GET", "/sims/89882280000000000999/usage", "", &e); st != 404 || !strings.Contains(e["message"].(string), "not found") {
		t.Fatalf("unknown SIM: %d %v", st, e)
	}
	var sim map[string]any
	if st := api(t, hs.URL, tok, "PUT", "/sims/"+iccid, `{"label":"gw-1","status":"DISABLED"}`, &sim); st != 200 || sim["label"] != "gw-1" || sim["status"] != "DISABLED" {
		t.Fatalf("put: %d %v", st, sim)
	}
	if st := api(t, hs.URL, tok, "PUT", "/sims/"+iccid, `{"status":"BROKEN"}`, nil); st != 400 {
		t.Fatalf("bad status: %d", st)
	}
	var sms map[string]any
	if st := api(t, hs.URL, tok, "POST", "/sims/"+iccid+"/sms", `{"payload":"hi","source_address":"bench"}`, &sms); st != 201 || sms["status"] != smsBuffered {
		t.Fatalf("sms post: %d %v", st, sms)
	}
	id := int64(sms["id"].(float64))
	path := "/sims/" + iccid + "/sms/" + jsonNum(id)
	if st := api(t, hs.URL, tok, "GET", path, "", &sms); st != 200 || sms["payload"] != "hi" {
		t.Fatalf("sms get: %d %v", st, sms)
	}
	var list []map[string]any
	if st := api(t, hs.URL, tok, "GET", "/sims/"+iccid+"/sms", "", &list); st != 200 || len(list) != 1 {
		t.Fatalf("sms list: %d %v", st, list)
	}
	if st := api(t, hs.URL, tok, "DELETE", path, "", nil); st != 204 {
		t.Fatalf("sms delete: %d", st)
	}
	if st := api(t, hs.URL, tok, "GET", path, "", nil); st != 404 {
		t.Fatalf("deleted sms: %d", st)
	}
	if st := api(t, hs.URL, tok, "POST", "/sims/"+iccid+"/sms", `{"source_address":"x"}`, nil); st != 400 {
		t.Fatalf("sms without payload: %d", st)
	}
	if err := s.UseData(iccid, 1000); err != nil {
		t.Fatal(err)
	}
	var q map[string]any
	if st := api(t, hs.URL, tok, "POST", "/sims/"+iccid+"/topup", `{"data_bytes":500}`, &q); st != 200 || q["remaining"] != 500.0 || q["status"] != "ACTIVE" {
		t.Fatalf("topup: %d %v", st, q)
	}
	if st := api(t, hs.URL, tok, "POST", "/sims/topup", `["`+iccid+`","`+other+`"]`, nil); st != 200 {
		t.Fatalf("bulk topup: %d", st)
	}
	if st := api(t, hs.URL, tok, "POST", "/sims/topup", `{"iccids":["89882280000000000999"]}`, nil); st != 404 {
		t.Fatalf("bulk topup unknown: %d", st)
	}
	if got, _ := s.SIM(iccid); got.DataRemaining != 1500 || got.DataTotal != 2500 || got.SMSRemaining != 20 {
		t.Fatalf("after topups: %+v", got)
	}
	if st := api(t, hs.URL, tok, "GET", "/nothing", "", nil); st != 404 {
		t.Fatalf("unknown route: %d", st)
	}
}

func jsonNum(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestMOForwardedAsGuideUntil2xx(t *testing.T) {
	app := newApp(t, 2)
	s, _ := newSim(t, app.URL)
	submit := time.Date(2026, 3, 1, 11, 11, 12, 0, time.FixedZone("CET", 3600)) // must arrive as GMT
	if err := s.ForwardMO(iccid, MO{Dest: "5432145", Text: "hello platform", SubmitTime: submit}); err != nil {
		t.Fatal(err)
	}
	got := wait(t, app.got)
	if got.method != http.MethodPost {
		t.Fatalf("method %s", got.method)
	}
	want, err := os.ReadFile(filepath.Join("..", "testdata", "mo_forward.json"))
	if err != nil {
		t.Fatal(err)
	}
	var gotV, wantV map[string]any
	if err := json.Unmarshal(got.body, &gotV); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &wantV); err != nil {
		t.Fatal(err)
	}
	// The id is the simulator's counter; everything else must match.
	gotV["id"], gotV["multi_part_info"].(map[string]any)["identifier"] = wantV["id"], wantV["id"]
	if !reflect.DeepEqual(gotV, wantV) {
		t.Fatalf("MO JSON\n got %s\nwant %s", got.body, want)
	}
	app.mu.Lock()
	calls := app.calls
	app.mu.Unlock()
	if calls != 3 {
		t.Fatalf("app called %d times, want 3 (2 failures, then 2xx)", calls)
	}

	if err := s.ForwardMO(iccid, MO{Dest: "1", Data: []byte{0xca, 0xfe}, DCS: DCS8Bit, PartNo: 2, Total: 3, Identifier: 77}); err != nil {
		t.Fatal(err)
	}
	var bin receiver.MO
	if err := json.Unmarshal(wait(t, app.got).body, &bin); err != nil {
		t.Fatal(err)
	}
	if bin.DCS != 4 || bin.Payload != "cafe" || bin.MultiPartInfo == nil || *bin.MultiPartInfo != (receiver.MultiPart{PartNo: 2, Total: 3, Identifier: 77}) {
		t.Fatalf("8-bit MO %+v", bin)
	}
	if err := s.ForwardMO(iccid, MO{DCS: 8}); err == nil {
		t.Fatal("UCS2 dcs accepted; OPERATOR.md §4 names only 0 and 4")
	}
	if err := s.ForwardMO("89882280000000000999", MO{}); err == nil {
		t.Fatal("unknown ICCID accepted")
	}
}

func TestMTDeliveredToDeviceWithDeliveryReport(t *testing.T) {
	app := newApp(t, 0)
	s, hs := newSim(t, app.URL)
	tok := token(t, hs.URL)
	// Submitted before the modem is there: buffered, delivered on Register.
	if st := api(t, hs.URL, tok, "POST", "/sims/"+iccid+"/sms", `{"payload":"early","source_address":"bench"}`, nil); st != 201 {
		t.Fatal(st)
	}
	dev := newFakeDevice()
	if err := s.Register(dev); err != nil {
		t.Fatal(err)
	}
	wait(t, dev.got)
	if st := api(t, hs.URL, tok, "POST", "/sims/"+iccid+"/sms", `{"payload":"ping","source_address":"+4912345"}`, nil); st != 201 {
		t.Fatal(st)
	}
	wait(t, dev.got)
	dev.mu.Lock()
	texts := dev.texts
	dev.mu.Unlock()
	if !reflect.DeepEqual(texts, [][2]string{{"bench", "early"}, {"+4912345", "ping"}}) {
		t.Fatalf("device got %v", texts)
	}
	for range 2 {
		r := wait(t, app.got)
		var dlr map[string]any
		if err := json.Unmarshal(r.body, &dlr); err != nil {
			t.Fatal(err)
		}
		status, _ := dlr["status"].(map[string]any)
		endpoint, _ := dlr["endpoint"].(map[string]any)
		if r.method != http.MethodPatch || status["status"] != "DELIVERED" || endpoint["name"] != iccid ||
			len(dlr["submit_date"].(string)) != 19 || len(dlr["final_date"].(string)) != 19 || dlr["id"] == nil {
			t.Fatalf("DLR %s %s", r.method, r.body)
		}
	}
	got, _ := s.SIM(iccid)
	if got.SMSMT != 2 || got.MT[0].Status != smsDelivered {
		t.Fatalf("state %+v", got)
	}
}

func TestResetReachesDevice(t *testing.T) {
	s, hs := newSim(t, "")
	tok := token(t, hs.URL)
	dev := newFakeDevice()
	if err := s.Register(dev); err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	if st := api(t, hs.URL, tok, "POST", "/sims/"+iccid+"/reset", "", &r); st != 202 || r["status"] != "QUEUED" {
		t.Fatalf("reset: %d %v", st, r)
	}
	var ci map[string]any
	api(t, hs.URL, tok, "GET", "/sims/"+iccid+"/connectivity_info", "", &ci)
	if ci["status"] != "RESETTING" {
		t.Fatalf("connectivity during reset %v", ci)
	}
	wait(t, dev.got)
	api(t, hs.URL, tok, "GET", "/sims/"+iccid+"/connectivity_info", "", &ci)
	got, _ := s.SIM(iccid)
	if ci["status"] != "ONLINE" || got.ResetCount != 1 || got.Events[len(got.Events)-1].Type != "RESET_DONE" {
		t.Fatalf("after reset: %v %+v", ci, got)
	}
}

func TestControlEndpoints(t *testing.T) {
	_, hs := newSim(t, "")
	tok := token(t, hs.URL)
	post := func(path string) int {
		req, _ := http.NewRequest(http.MethodPost, hs.URL+path, nil)
		return do(t, req, nil)
	}
	if st := post("/_sim/faults?kind=throttle&count=1&retry_after=2"); st != 204 {
		t.Fatal(st)
	}
	req, _ := http.NewRequest(http.MethodGet, hs.URL+"/management-api/v1/sims", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("fault: %d %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if st := post("/_sim/faults?kind=bogus"); st != 400 {
		t.Fatal(st)
	}
	if st := post("/_sim/sims/" + iccid + "/usage?bytes=10"); st != 204 {
		t.Fatal(st)
	}
	if st := post("/_sim/tokens/revoke"); st != 204 {
		t.Fatal(st)
	}
	if st := api(t, hs.URL, tok, "GET", "/sims", "", nil); st != 401 {
		t.Fatalf("revoked token accepted: %d", st)
	}
	var state SIMState
	req, _ = http.NewRequest(http.MethodGet, hs.URL+"/_sim/sims/"+iccid, nil)
	if st := do(t, req, &state); st != 200 || state.UsedBytes != 10 {
		t.Fatalf("state %d %+v", st, state)
	}
}

func TestParseSpecs(t *testing.T) {
	sc, err := ParseSIMSpec(iccid + ",msisdn=882285100000011,data=5MB,sms=9,label=gw")
	if err != nil || sc.DataBytes != 5<<20 || sc.SMS != 9 || sc.MSISDN != "882285100000011" || sc.Label != "gw" {
		t.Fatalf("%+v %v", sc, err)
	}
	for _, bad := range []string{"123", iccid + ",data=lots", iccid + ",color=red", iccid + ",sms", iccid + ",sms=-1"} {
		if _, err := ParseSIMSpec(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if u, p, err := ParseUserSpec("admin:" + pw); err != nil || u != "admin" || p != "s3cret" {
		t.Fatalf("%s %s %v", u, p, err)
	}
	if _, _, err := ParseUserSpec("admin"); err == nil {
		t.Fatal("spec without file accepted")
	}
}

func TestSelfSignedServes(t *testing.T) {
	cfg := Config{Listen: "127.0.0.1:0", TLSSelfSigned: true, Users: map[string]string{"a": "b"}}
	tlsCfg, certPEM, err := cfg.ServerTLS()
	if err != nil || tlsCfg == nil || !bytes.Contains(certPEM, []byte("BEGIN CERTIFICATE")) {
		t.Fatalf("%v", err)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Start("127.0.0.1:0", tlsCfg); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.URL(), "https://127.0.0.1:") {
		t.Fatal(s.URL())
	}
	if _, _, err := (Config{TLSCertFile: "x"}).ServerTLS(); err == nil {
		t.Fatal("cert without key accepted")
	}
}

func TestNewRejectsBadSIMs(t *testing.T) {
	if _, err := New(Config{SIMs: []SIMConfig{{ICCID: "12"}}}); err == nil {
		t.Fatal("bad ICCID accepted")
	}
	if _, err := New(Config{SIMs: []SIMConfig{{ICCID: iccid}, {ICCID: iccid}}}); err == nil {
		t.Fatal("duplicate accepted")
	}
}
