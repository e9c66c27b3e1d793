package mqtt

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"cellagent/modem/clock/clocktest"
)

type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A flood of refused commands writes a bounded number of warnings, as it
// gets a bounded number of answers, and the next warning says how many
// were held back.
func TestRefusedCommandFloodLogsBounded(t *testing.T) {
	var logs lockedLog
	clk := clocktest.New(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), 0)
	c, err := New(Options{
		Conn: Conn{Broker: "tls://broker.example:8883"}, DeviceID: "dev1",
		Ordered: Adapt(&memQueue{}), Telemetry: Adapt(&memQueue{}),
		Commands: Commands{Enabled: true, Burst: 1, Handlers: Handlers{Status: func(context.Context) error { return nil }}},
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
		Clock:    clk,
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := &pubRecorder{}
	s := &session{cli: rec, lost: make(chan struct{})}
	for range 2000 {
		c.cmds.receive(s, "cellagent/v1/dev1/cmd/status", []byte(`not json`), false)
		c.cmds.receive(s, "cellagent/v1/dev2/cmd/status", []byte(`{"id":"x"}`), false)
	}
	if n := c.cmds.refused.Load(); n != 2000 {
		t.Fatalf("refused %d, want 2000", n)
	}
	if n := strings.Count(logs.String(), "level=WARN"); n > 4 {
		t.Errorf("%d warnings for a flood of 4000 commands, want at most the answers' burst (4)", n)
	}
	clk.Advance(time.Minute) // a quiet minute later
	c.cmds.receive(s, "cellagent/v1/dev1/cmd/status", []byte(`not json`), false)
	if !strings.Contains(logs.String(), "unlogged_before=") {
		t.Errorf("the warning after the flood does not say how many were held back:\n%s", logs.String())
	}
}

// encoding/json would turn a lone surrogate escape into U+FFFD and the
// SMS would carry a character nobody wrote.
func TestCommandLoneSurrogateRefused(t *testing.T) {
	for _, c := range []struct {
		payload string
		ok      bool
	}{
		{`{"id":"m1","to":"5432145","text":"a\ud800b"}`, false},
		{`{"id":"m1","to":"5432145","text":"a\udc00"}`, false},
		{`{"id":"m1","to":"5432145","text":"\ud83d"}`, false},
		{`{"id":"m1","to":"5432145","text":"\ud83d\u0041"}`, false},
		{`{"id":"m1","to":"5432145","text":"\ud83d\ude00 ok"}`, true},
		{`{"id":"m1","to":"5432145","text":"\\ud800 is text"}`, true},
		{`{"id":"m1","to":"5432145","text":"\u00e9\u20ac"}`, true},
	} {
		cmd, err := ParseCommand(CmdSMSSend, []byte(c.payload), 0)
		switch {
		case c.ok && err != nil:
			t.Errorf("%s: %v", c.payload, err)
		case !c.ok && (err == nil || !strings.Contains(err.Error(), "surrogate")):
			t.Errorf("%s: accepted as %q (err %v)", c.payload, cmd.SMS.Text, err)
		case !c.ok:
			var ce *CommandError
			if !errors.As(err, &ce) || ce.ID != "m1" {
				t.Errorf("%s: the refusal does not name the request", c.payload)
			}
		}
	}
}
