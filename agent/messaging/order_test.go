package messaging

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"cellagent/modem/at"
	"cellagent/modem/bg96emu"
	"cellagent/modem/sms"
)

// awayPort is a modem that has gone: every command fails as a closed port.
type awayPort struct{ sms.Commander }

func (awayPort) SMSCommand(context.Context, string, string, ...at.CommandOption) ([]string, error) {
	return nil, fmt.Errorf("%w: modem away", at.ErrClosed)
}

// Messages queued while the modem is away leave in the order they were
// accepted once it is back, the one whose send the drop cut short first.
func TestOutboxKeepsOrderAcrossPortDrop(t *testing.T) {
	r := newRig(t, bg96emu.Config{})
	away, err := NewOutbox(awayPort{r.a}, OutboxConfig{Store: r.st})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := away.Submit(Request{To: "+491701234567", Text: "s1"}); err != nil {
		t.Fatal(err)
	}
	if err := away.Run(context.Background()); !errors.Is(err, at.ErrClosed) {
		t.Fatalf("outbox on a dropped port: %v, want a closed-port error", err)
	}
	for _, text := range []string{"s2", "s3"} {
		if _, _, err := away.Submit(Request{To: "+491701234567", Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	back, err := NewOutbox(r.a, OutboxConfig{Store: r.st})
	if err != nil {
		t.Fatal(err)
	}
	runOutbox(t, back)
	eventually(t, "three messages sent", func() bool { return len(r.m.SentMessages()) == 3 })
	var got []string
	for _, m := range r.m.SentMessages() {
		got = append(got, m.Text)
	}
	if want := []string{"s1", "s2", "s3"}; !slices.Equal(got, want) {
		t.Fatalf("sent %v, want %v", got, want)
	}
}
