package receiver

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// The README documents the JSON lines of `bsc receive --json`; every
// example must decode, field for field, into the Record of this version.
func TestREADMEExamplesDecode(t *testing.T) {
	b, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "<!-- example: bsc receive -->\n```json\n")
	if !ok {
		t.Fatal("README has no bsc receive example")
	}
	block, _, _ := strings.Cut(after, "```")
	kinds := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
		dec := json.NewDecoder(bytes.NewReader([]byte(line)))
		dec.DisallowUnknownFields()
		var r Record
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if r.V != RecordVersion || r.ICCID == "" || r.ID == "" || r.Received.IsZero() {
			t.Errorf("%s: %+v", line, r)
		}
		if r.Kind == KindReply && (r.Reply == nil || r.Reply.Counter == 0) {
			t.Errorf("reply without its decoding: %s", line)
		}
		kinds[r.Kind] = true
		again, _ := json.Marshal(r)
		if string(again) != line {
			t.Errorf("example does not round-trip:\n%s\n%s", line, again)
		}
	}
	for _, k := range []string{KindSMS, KindReply, KindDeliveryReport} {
		if !kinds[k] {
			t.Errorf("no example of kind %s", k)
		}
	}
}
