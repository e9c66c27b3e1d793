package mqtt

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseCommand: any topic name and payload give a valid command or a
// *CommandError, never a panic, and what is accepted keeps the promises
// the handlers rely on. Seeds: testdata/fuzz/FuzzParseCommand/.
func FuzzParseCommand(f *testing.F) {
	f.Add(CmdStatus, []byte(`{"id":"s1"}`))
	f.Fuzz(func(t *testing.T, name string, payload []byte) {
		cmd, err := ParseCommand(name, payload, 0)
		if err != nil {
			var ce *CommandError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T: %v", err, err)
			}
			if ce.ID != "" && ValidateLevel(ce.ID) != nil {
				t.Fatalf("error carries invalid id %q", ce.ID)
			}
			return
		}
		if cmd.Name != name || ValidateLevel(cmd.ID) != nil || len(payload) > DefaultMaxCommandPayload {
			t.Fatalf("accepted %+v from %q", cmd, payload)
		}
		switch name {
		case CmdSMSSend:
			s := cmd.SMS
			if s.ID != cmd.ID || !validNumber(s.To) || (s.Text == "") == (len(s.Data) == 0) ||
				utf8.RuneCountInString(s.Text) > MaxSMSText || len(s.Data) > MaxSMSData || !utf8.ValidString(s.Text) {
				t.Fatalf("accepted sms %+v", s)
			}
			// U+FFFD only where the requester wrote it: not made by the
			// decoder from a lone surrogate escape.
			if strings.ContainsRune(s.Text, utf8.RuneError) && !strings.Contains(string(payload), "\uFFFD") &&
				!strings.Contains(strings.ToLower(string(payload)), `\ufffd`) {
				t.Fatalf("accepted text %q with a replacement character from %q", s.Text, payload)
			}
		case CmdRecover:
			if !validStep(cmd.Step) {
				t.Fatalf("accepted step %q", cmd.Step)
			}
		}
	})
}

// FuzzFleetApply: whatever devices publish (the fleet reader trusts none
// of them), Apply never panics, and a gateway it reports carries the id
// taken from the topic.
func FuzzFleetApply(f *testing.F) {
	p := DefaultPrefix + "/gw1/"
	f.Add(p+"status", []byte(`{"v":1,"state":"online","session":2,"ts":1700000000}`), true)
	f.Add(p+"telemetry", []byte(`{"v":1,"seq":3,"ts":1700000100,"reg":{"eps":"home"},"rsrp":-90}`), false)
	f.Add(p+"event", []byte(`{"v":1,"ts":1700000200,"type":"sim","msg":"SIM changed"}`), false)
	f.Add(p+"sms/in", []byte(`{"v":1,"id":"a","from":"+49","parts":1,"received":"2023-11-14T22:14:00Z"}`), false)
	f.Add(p+"sms/out/result", []byte(`{"v":1,"ts":1,"id":"op","state":"sent"}`), false)
	f.Add(p+"status", []byte(``), true)
	f.Fuzz(func(t *testing.T, topic string, payload []byte, retained bool) {
		fl, err := NewFleet(FleetOptions{Conn: Conn{Broker: "tls://b"}})
		if err != nil {
			t.Fatal(err)
		}
		g, changed := fl.Apply(topic, payload, retained)
		if !changed {
			return
		}
		pt, ok := ParseTopic(DefaultPrefix, topic)
		if !ok || g.ID != pt.Device {
			t.Fatalf("gateway %q from topic %q", g.ID, topic)
		}
	})
}
