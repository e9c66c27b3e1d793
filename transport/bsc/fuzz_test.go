package bsc

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Each decoder must turn any input into a value or a *DecodeError, never a
// panic. Seeds: the fixtures plus testdata/fuzz/<Name>/.
func fuzzDecoder(f *testing.F, fixtures []string, decode func([]byte) error) {
	for _, name := range fixtures {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := decode(b)
		var de *DecodeError
		if err != nil && !errors.As(err, &de) {
			t.Fatalf("error is %T, want *DecodeError: %v", err, err)
		}
	})
}

func FuzzDecodeToken(f *testing.F) {
	fuzzDecoder(f, []string{"token.json"}, func(b []byte) error {
		tok, err := decodeToken(b)
		if err == nil && (tok.AccessToken == "" || tok.ExpiresIn <= 0) {
			panic("accepted a token without value or lifetime")
		}
		return err
	})
}

func FuzzDecodeSIM(f *testing.F) {
	fuzzDecoder(f, []string{"sim.json"}, func(b []byte) error { _, err := decodeSIM(b); return err })
}

func FuzzDecodeSIMList(f *testing.F) {
	fuzzDecoder(f, []string{"sims.json"}, func(b []byte) error { _, err := decodeSIMList(b); return err })
}

func FuzzDecodeConnectivity(f *testing.F) {
	fuzzDecoder(f, []string{"connectivity_info.json"}, func(b []byte) error { _, err := decodeConnectivity(b); return err })
}

func FuzzDecodeEvents(f *testing.F) {
	fuzzDecoder(f, []string{"events.json"}, func(b []byte) error { _, err := decodeEvents(b); return err })
}

func FuzzDecodeQuota(f *testing.F) {
	fuzzDecoder(f, []string{"quota_data.json", "quota_sms.json"}, func(b []byte) error {
		q, err := decodeQuota("quota", b)
		if err == nil {
			_ = q.Exhausted()
			_ = q.Throttled()
		}
		return err
	})
}

func FuzzDecodeUsage(f *testing.F) {
	fuzzDecoder(f, []string{"usage.json"}, func(b []byte) error { _, err := decodeUsage(b); return err })
}

func FuzzDecodeReset(f *testing.F) {
	fuzzDecoder(f, []string{"reset.json"}, func(b []byte) error { _, err := decodeReset(b); return err })
}

func FuzzDecodeSMSAccepted(f *testing.F) {
	fuzzDecoder(f, []string{"sms_accepted.json"}, func(b []byte) error { _, err := decodeSMSAccepted(b); return err })
}
