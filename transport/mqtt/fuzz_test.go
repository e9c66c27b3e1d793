package mqtt

import (
	"errors"
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
		case CmdRecover:
			if !validStep(cmd.Step) {
				t.Fatalf("accepted step %q", cmd.Step)
			}
		}
	})
}
