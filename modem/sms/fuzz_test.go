package sms

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"cellagent/modem/clock/clocktest"
)

// The seed corpora live in testdata/fuzz/<Name>/: every reference vector,
// and the AT lines the vectors' sources pair with them.

func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, pdu []byte) {
		m := Decode(pdu)
		if m.ID == "" || m.PDU != strings.ToUpper(hex.EncodeToString(pdu)) {
			t.Fatalf("ID or raw PDU lost: %+v", m)
		}
		if again := Decode(pdu); again.ID != m.ID {
			t.Fatalf("unstable ID %s vs %s", m.ID, again.ID)
		}
		if m.Err == nil && m.Kind == Unknown {
			t.Fatal("decoded without a kind")
		}
	})
}

func FuzzParseCMGL(f *testing.F) {
	f.Fuzz(func(t *testing.T, answer string) {
		lines := strings.Split(answer, "\n")
		es, _ := ParseCMGL(lines)
		if len(es) > len(lines) {
			t.Fatalf("%d entries from %d lines", len(es), len(lines))
		}
		for _, e := range es {
			if e.ID == "" {
				t.Fatalf("entry without ID: %+v", e)
			}
		}
	})
}

func FuzzParseURC(f *testing.F) {
	f.Fuzz(func(t *testing.T, header, pdu string) {
		for _, p := range []func([]string) Message{ParseCMT, ParseCDS} {
			for _, lines := range [][]string{{header, pdu}, {header}} {
				if m := p(lines); m.ID == "" || (len(lines) == 1 && m.Err == nil) {
					t.Fatalf("%q gave %+v", lines, m)
				}
			}
		}
	})
}

// FuzzAssembler reads the input as a stream of parts, four bytes each:
// originator, reference, total, sequence number; a fifth of the clock
// advances a minute before each part.
func FuzzAssembler(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		clock := clocktest.New(time.Unix(0, 0), 0)
		a := NewAssembler(5*time.Minute, clock)
		check := func(m Assembled) {
			if len(m.Parts) == 0 || len(m.Parts)+len(m.Missing) != m.Total {
				t.Fatalf("parts %d + missing %v != total %d", len(m.Parts), m.Missing, m.Total)
			}
			for i := 1; i < len(m.Parts); i++ {
				if m.Parts[i-1].Concat.Seq >= m.Parts[i].Concat.Seq {
					t.Fatal("parts out of order")
				}
			}
		}
		for i := 0; i+4 <= len(in); i += 4 {
			if in[i]%5 == 0 {
				clock.Advance(time.Minute)
			}
			m := Message{Kind: Deliver, From: string('a' + rune(in[i]%3)), Text: string(rune('A' + in[i+3]%26)),
				Concat: &Concat{Ref: int(in[i+1] % 4), RefBits: 8, Total: int(in[i+2] % 6), Seq: int(in[i+3] % 7)}}
			m.ID = hashID(in[i : i+4])
			if got, ok := a.Add(m, clock.Now()); ok {
				check(got)
			}
			for _, x := range a.Expire() {
				check(x)
			}
		}
		for _, x := range a.Flush() {
			check(x)
		}
		if len(a.groups) != 0 {
			t.Fatal("Flush left messages pending")
		}
	})
}
