package localapi

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode"
)

// The request decoders take whatever a local client sends: they must
// never panic, must refuse with ErrBadRequest only, and what they accept
// must hold the promises the handlers rely on. Seeds are in
// testdata/fuzz.

func FuzzDecodeSMSRequest(f *testing.F) {
	f.Add([]byte(`{"v":1,"to":"5432145","text":"hi","report":true,"idempotency_key":"app-42"}`))
	f.Add([]byte(`{"to":"+491701234567","data":"AQID"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeSMSRequest(body)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v is not a bad request", err)
			}
			return
		}
		if r.To == "" || (r.Text == "") == (len(r.Data) == 0) || len(r.IdempotencyKey) > MaxKeyLen || (r.V != 0 && r.V != V) {
			t.Fatalf("accepted %+v", r)
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzDecodeATRequest(f *testing.F) {
	f.Add([]byte(`{"command":"AT+CSQ"}`))
	f.Add([]byte(`{"v":1,"command":"AT+CFUN=0","force":true,"timeout_ms":15000}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeATRequest(body)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v is not a bad request", err)
			}
			return
		}
		if !strings.HasPrefix(strings.ToUpper(r.Command), "AT") || len(r.Command) > MaxCommand || r.TimeoutMS < 0 || r.TimeoutMS > MaxTimeoutMS {
			t.Fatalf("accepted %+v", r)
		}
		for _, c := range r.Command {
			if c > unicode.MaxASCII || !unicode.IsPrint(c) {
				t.Fatalf("accepted a control or non-ASCII character in %q", r.Command)
			}
		}
	})
}

func FuzzDecodeRecoverRequest(f *testing.F) {
	f.Add([]byte(`{"step":"reattach"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeRecoverRequest(body)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v is not a bad request", err)
			}
			return
		}
		if r.Step == "" || len(r.Step) > 64 {
			t.Fatalf("accepted %+v", r)
		}
	})
}

func FuzzParseCursor(f *testing.F) {
	f.Add("17", "50")
	f.Add("", "")
	f.Add("18446744073709551615", "500")
	f.Fuzz(func(t *testing.T, after, limit string) {
		_, n, err := ParseCursor(after, limit, maxPage)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v is not a bad request", err)
			}
			return
		}
		if n < 1 || n > maxPage {
			t.Fatalf("limit %d accepted", n)
		}
	})
}
