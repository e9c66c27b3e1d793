package receiver

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cellagent/transport/smscmd"
)

const iccid = "89882280666012345678"

func mo(id int64, payload string, dcs, part, total int, ident int64) string {
	return fmt.Sprintf(`{"id":%d,"payload":%q,"submit_date":"2026-12-04 20:00:00","dest_address":"5432145",`+
		`"source_address":"882285100012345","dcs":%d,"pid":0,"endpoint":{"id":1000,"name":%q},`+
		`"organisation":{"id":1234},"multi_part_info":{"partno":%d,"total":%d,"identifier":%d}}`,
		id, payload, dcs, iccid, part, total, ident)
}

func dlr(id int64, status string) string {
	return fmt.Sprintf(`{"id":%d,"final_date":"2026-12-04 20:00:05","submit_date":"2026-12-04 20:00:00",`+
		`"organisation":{"id":1234},"endpoint":{"id":1000,"name":%q},"status":{"id":4,"status":%q}}`, id, iccid, status)
}

type rig struct {
	t   *testing.T
	srv *httptest.Server
	st  *Store
	h   *Handler
}

func newRig(t *testing.T, auth Auth) *rig {
	st, err := Open(filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := &Handler{Store: st, Auth: auth}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &rig{t: t, srv: srv, st: st, h: h}
}

var headerAuth = Auth{Header: "X-Token", Secret: "s3cret"}

func (r *rig) send(method, body string, hdr map[string]string) int {
	r.t.Helper()
	req, err := http.NewRequest(method, r.srv.URL, strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Token", "s3cret")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (r *rig) records() []Record {
	r.t.Helper()
	recs, err := r.st.Unshown(1000)
	if err != nil {
		r.t.Fatal(err)
	}
	return recs
}

func TestRetriedForwardStoredOnce(t *testing.T) {
	r := newRig(t, headerAuth)
	for range 5 {
		if code := r.send(http.MethodPost, mo(7, "hello", 0, 1, 1, 7), nil); code != http.StatusNoContent {
			t.Fatalf("status %d", code)
		}
	}
	for range 5 {
		if code := r.send(http.MethodPatch, dlr(9, "DELIVERED"), nil); code != http.StatusNoContent {
			t.Fatalf("status %d", code)
		}
	}
	recs := r.records()
	if len(recs) != 2 || recs[0].Text != "hello" || recs[1].Status != "DELIVERED" {
		t.Fatalf("records %+v", recs)
	}
}

func TestRefusals(t *testing.T) {
	r := newRig(t, headerAuth)
	huge := `{"id":1,"payload":"` + strings.Repeat("a", 10<<20) + `"}`
	for _, c := range []struct {
		name, method, body string
		hdr                map[string]string
		want               int
	}{
		{"wrong secret", http.MethodPost, mo(1, "x", 0, 1, 1, 1), map[string]string{"X-Token": "guess"}, 401},
		{"no secret", http.MethodPost, mo(1, "x", 0, 1, 1, 1), map[string]string{"X-Token": ""}, 401},
		{"GET", http.MethodGet, "", nil, 405},
		{"10 MB", http.MethodPost, huge, nil, 413},
		{"malformed JSON", http.MethodPost, `{"id":1,`, nil, 400},
		{"trailing data", http.MethodPost, mo(1, "x", 0, 1, 1, 1) + "{}", nil, 400},
		{"unknown field", http.MethodPost, strings.Replace(mo(1, "x", 0, 1, 1, 1), `"pid":0`, `"pid":0,"extra":1`, 1), nil, 400},
		{"dcs 8 (UCS-2)", http.MethodPost, mo(1, "x", 8, 1, 1, 1), nil, 400},
		{"dcs 4 not hex", http.MethodPost, mo(1, "zz", 4, 1, 1, 1), nil, 400},
		{"part beyond total", http.MethodPost, mo(1, "x", 0, 3, 2, 1), nil, 400},
		{"no ICCID", http.MethodPost, strings.Replace(mo(1, "x", 0, 1, 1, 1), iccid, "me", 1), nil, 400},
		{"escape in sender", http.MethodPost, strings.Replace(mo(1, "x", 0, 1, 1, 1), "882285100012345", `\u001b[2J`, 1), nil, 400},
		{"text/plain", http.MethodPost, mo(1, "x", 0, 1, 1, 1), map[string]string{"Content-Type": "text/plain"}, 415},
		{"report without status", http.MethodPatch, dlr(1, ""), nil, 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := r.send(c.method, c.body, c.hdr); got != c.want {
				t.Errorf("status %d, want %d", got, c.want)
			}
		})
	}
	if recs := r.records(); len(recs) != 0 {
		t.Errorf("refused forwards stored: %+v", recs)
	}
}

func TestBasicAuth(t *testing.T) {
	r := newRig(t, Auth{User: "bsc", Secret: "pw"})
	req, _ := http.NewRequest(http.MethodPost, r.srv.URL, strings.NewReader(mo(1, "x", 0, 1, 1, 1)))
	req.SetBasicAuth("bsc", "pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("status %d", resp.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodPost, r.srv.URL, strings.NewReader(mo(2, "x", 0, 1, 1, 1)))
	req.SetBasicAuth("bsc", "p")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: status %d", resp.StatusCode)
	}
}

// Parts arrive out of order and twice; the message appears once, whole,
// and a later message reusing the identifier assembles on its own.
func TestMultiPartReassembly(t *testing.T) {
	r := newRig(t, headerAuth)
	for _, b := range []string{
		mo(12, "world", 0, 2, 2, 77), mo(12, "world", 0, 2, 2, 77), mo(11, "hello ", 0, 1, 2, 77),
		mo(20, "cafe", 4, 2, 2, 5), mo(19, "00ff", 4, 1, 2, 5),
		mo(31, "again", 0, 1, 2, 77), mo(32, "!", 0, 2, 2, 77),
	} {
		if code := r.send(http.MethodPost, b, nil); code != http.StatusNoContent {
			t.Fatalf("status %d", code)
		}
	}
	recs := r.records()
	if len(recs) != 3 {
		t.Fatalf("%d records: %+v", len(recs), recs)
	}
	if recs[0].Text != "hello world" || recs[0].Parts != 2 || recs[0].ID != "11" {
		t.Errorf("text message: %+v", recs[0])
	}
	if recs[1].DataHex != "00ffcafe" || recs[1].DCS != 4 {
		t.Errorf("8-bit message: %+v", recs[1])
	}
	if recs[2].Text != "again!" {
		t.Errorf("reused identifier: %+v", recs[2])
	}
}

func TestDecorateVerifiesReplies(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	keys := func(string) ([]byte, error) { return key, nil }
	reply, err := smscmd.Sign(key, iccid, smscmd.Message{Kind: smscmd.Reply, Counter: 5, Verb: "status", Args: []string{"ok", "reg=home"}})
	if err != nil {
		t.Fatal(err)
	}
	cmd, _ := smscmd.Sign(key, iccid, smscmd.Message{Kind: smscmd.Command, Counter: 5, Verb: "status"})
	forged, _ := smscmd.Sign(bytes.Repeat([]byte{8}, 32), iccid, smscmd.Message{Kind: smscmd.Reply, Counter: 5, Verb: "status", Args: []string{"ok"}})
	for _, c := range []struct {
		text, wantErr string
		keys          Keys
	}{
		{reply, "", keys},
		{forged, "signature does not verify", keys},
		{cmd, "a command, not a reply", keys},
		{reply[:40], "malformed", keys},
		{reply, "no key for this SIM", func(string) ([]byte, error) { return nil, fmt.Errorf("none") }},
	} {
		got := Decorate(Record{Kind: KindSMS, ICCID: iccid, Text: c.text}, c.keys)
		if got.Kind != KindReply || got.ReplyError != c.wantErr {
			t.Errorf("%q: kind %s error %q, want %q", c.text, got.Kind, got.ReplyError, c.wantErr)
		}
		if c.wantErr == "" && (got.Reply == nil || got.Reply.Counter != 5 || !got.Reply.OK || got.Reply.Fields[0] != "reg=home") {
			t.Errorf("reply %+v", got.Reply)
		}
	}
	if got := Decorate(Record{Kind: KindSMS, ICCID: iccid, Text: "plain"}, keys); got.Kind != KindSMS {
		t.Errorf("plain SMS became %s", got.Kind)
	}
}

func FuzzDecodeMO(f *testing.F) {
	f.Add([]byte(mo(1, "hello", 0, 1, 1, 1)))
	f.Add([]byte(mo(2, "00ff", 4, 1, 2, 9)))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMO(b)
		if err != nil {
			return
		}
		if m.ID <= 0 || (m.DCS != DCSGSM7 && m.DCS != DCS8Bit) {
			t.Fatalf("accepted %+v", m)
		}
		recordOfMO([]MO{m}, time.Time{})
	})
}

func FuzzDecodeDLR(f *testing.F) {
	f.Add([]byte(dlr(1, "DELIVERED")))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDLR(b)
		if err != nil {
			return
		}
		if d.ID <= 0 || d.Status.Status == "" {
			t.Fatalf("accepted %+v", d)
		}
	})
}
