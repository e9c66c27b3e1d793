package bsc

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeFixtures(t *testing.T) {
	tok, err := decodeToken(fixture(t, "token.json"))
	if err != nil || tok.ExpiresIn != 3599 || tok.OrgID != "1234" || tok.AccessToken == "" {
		t.Fatalf("token: %+v %v", tok, err)
	}
	sim, err := decodeSIM(fixture(t, "sim.json"))
	if err != nil || sim.ICCID != "89882280000000000011" || sim.Status != "ENABLED" || sim.ActivationDate.Year() != 2026 {
		t.Fatalf("sim: %+v %v", sim, err)
	}
	sims, err := decodeSIMList(fixture(t, "sims.json"))
	if err != nil || len(sims) != 2 || sims[1].Label != "spare" {
		t.Fatalf("sims: %+v %v", sims, err)
	}
	ci, err := decodeConnectivity(fixture(t, "connectivity_info.json"))
	want := time.Date(2026, 3, 1, 10, 11, 12, 0, time.UTC)
	if err != nil || ci.Status != "ONLINE" || !ci.LastSeen.Equal(want) {
		t.Fatalf("connectivity: %+v %v", ci, err)
	}
	ev, err := decodeEvents(fixture(t, "events.json"))
	if err != nil || len(ev) != 2 || ev[0].ID != "1" || ev[1].ID != "2" {
		t.Fatalf("events: %+v %v", ev, err)
	}
	q, err := decodeQuota("data quota", fixture(t, "quota_data.json"))
	if err != nil || q.Unit != "bytes" || q.Thresholds.Throttle != 95 || q.Exhausted() || q.UsedPercent() != 80 {
		t.Fatalf("data quota: %+v %v", q, err)
	}
	sq, err := decodeQuota("sms quota", fixture(t, "quota_sms.json"))
	if err != nil || sq.Remaining != 248 || sq.Throttled() {
		t.Fatalf("sms quota: %+v %v", sq, err)
	}
	u, err := decodeUsage(fixture(t, "usage.json"))
	if err != nil || u.Data.Total != 5000 || u.SMS.MT != 3 {
		t.Fatalf("usage: %+v %v", u, err)
	}
	r, err := decodeReset(fixture(t, "reset.json"))
	if err != nil || r.ID != "42" || r.Status != "QUEUED" {
		t.Fatalf("reset: %+v %v", r, err)
	}
	a, err := decodeSMSAccepted(fixture(t, "sms_accepted.json"))
	if err != nil || a.ID != "43" {
		t.Fatalf("sms: %+v %v", a, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name    string
		decode  func([]byte) error
		body    string
		want    []string
		missing []string
	}{
		{"missing quota fields", func(b []byte) error { _, err := decodeQuota("data quota", b); return err },
			`{"status":"ACTIVE","total":null}`, []string{"missing required field(s) total, remaining, unit"}, []string{"total", "remaining", "unit"}},
		{"nested missing", func(b []byte) error { _, err := decodeUsage(b); return err },
			`{"data":{}}`, []string{"data.total_bytes"}, []string{"data.total_bytes"}},
		{"list item missing", func(b []byte) error { _, err := decodeSIMList(b); return err },
			`{"sims":[{"iccid":"1"},{"status":"X"}]}`, []string{"sims[0].status", "sims[1].iccid"}, []string{"sims[0].status", "sims[1].iccid"}},
		{"malformed", func(b []byte) error { _, err := decodeSIM(b); return err },
			`{"iccid": "8988228066`, []string{"malformed JSON", `body starts "{\"iccid\": \"8988228066"`}, nil},
		{"wrong type", func(b []byte) error { _, err := decodeSIM(b); return err },
			`{"iccid": 5, "status": "X"}`, []string{"field iccid: want string, got JSON number"}, nil},
		{"array not object", func(b []byte) error { _, err := decodeConnectivity(b); return err },
			`[1,2]`, []string{"want a JSON object, got JSON array"}, nil},
		{"bad timestamp", func(b []byte) error { _, err := decodeEvents(b); return err },
			`[{"timestamp":"yesterday","type":"X"}]`, []string{`timestamp "yesterday"`}, nil},
		{"token type", func(b []byte) error { _, err := decodeToken(b); return err },
			`{"access_token":"a","token_type":"mac","expires_in":5}`, []string{`token_type "mac", want bearer`}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.decode([]byte(tc.body))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("not a *DecodeError: %T", err)
			}
			if tc.missing != nil && strings.Join(de.Missing, ",") != strings.Join(tc.missing, ",") {
				t.Errorf("missing = %v, want %v", de.Missing, tc.missing)
			}
		})
	}
}

func TestQuotaErrorsAreQuotaUnavailable(t *testing.T) {
	_, err := decodeQuota("data quota", []byte(`{}`))
	if !errors.Is(err, ErrQuotaUnavailable) {
		t.Fatalf("want ErrQuotaUnavailable, got %v", err)
	}
}

// A truncated token answer must not leak the token into error text.
func TestTokenDecodeErrorHasNoExcerpt(t *testing.T) {
	secret := "7d0d3b1e-8b0a-4c4e-9a55-3f2f6f3d2c11"
	for _, body := range []string{`{"access_token":"` + secret + `","token_type":`, `{"access_token":"` + secret + `"}`} {
		_, err := decodeToken([]byte(body))
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Fatalf("error %v leaks the token or is nil", err)
		}
	}
}

func TestQuotaHelpers(t *testing.T) {
	q := Quota{Total: 100, Remaining: 3, Thresholds: Thresholds{Notify: 80, Throttle: 95, HardLimit: 100}}
	if !q.Throttled() || q.Exhausted() {
		t.Fatalf("97%% used: throttled=%v exhausted=%v", q.Throttled(), q.Exhausted())
	}
	q.Remaining = 0
	if !q.Exhausted() {
		t.Fatal("0 remaining must be exhausted")
	}
	if (&Quota{Total: 10, Remaining: 10, Status: "exhausted"}).Exhausted() != true {
		t.Fatal("platform status EXHAUSTED must win")
	}
}
