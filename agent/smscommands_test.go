package agent

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"cellagent/agent/bearer"
	"cellagent/agent/config"
	"cellagent/agent/messaging"
	"cellagent/agent/ratelimit"
	"cellagent/agent/store"
	"cellagent/agent/supervisor"
	"cellagent/transport/mqtt"
	"cellagent/transport/smscmd"
)

const cmdICCID = "89882280666012345678"

// cmdDaemon is the part of a daemon the SMS command path uses, on a
// real store: no modem, no broker (events wait in pending).
func cmdDaemon(t *testing.T, path string, key []byte) *daemon {
	t.Helper()
	cfg := config.Default()
	cfg.SMSCommands.AllowFrom = []string{"+4915112345678"}
	d := newDaemon(Options{Config: cfg})
	d.started = d.now()
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	d.st, d.feed = st, newFeed(st.Feed())
	if err := st.SaveState("iccid", []byte(cmdICCID)); err != nil {
		t.Fatal(err)
	}
	lim, err := ratelimit.New(messaging.Limits(cfg.SMS), d.clock)
	if err != nil {
		t.Fatal(err)
	}
	if d.outbox, err = messaging.NewOutbox(nil, messaging.OutboxConfig{Store: st, Limiter: lim, SMSC: cfg.SMS.SMSC}); err != nil {
		t.Fatal(err)
	}
	ev, err := ratelimit.New(ratelimit.Config{Global: []ratelimit.Window{{Period: time.Hour, Max: 1}}}, d.clock)
	if err != nil {
		t.Fatal(err)
	}
	d.smsCmds = &smsCommands{key: key, allow: map[string]bool{"4915112345678": true}, events: ev}
	return d
}

// A command runs once: not again when the inbox hands the same message
// over after a crash (before it was marked published), not as a replay
// under another id, not after a restart. Refusals are counted one by
// one but reported once; ordinary SMS are left to sms/in.
func TestSMSCommandAtMostOnce(t *testing.T) {
	key := []byte(strings.Repeat("k", 32))
	path := filepath.Join(t.TempDir(), "s.db")
	d := cmdDaemon(t, path, key)
	ctx := context.Background()
	ping, err := smscmd.Sign(key, cmdICCID, smscmd.Message{Kind: smscmd.Command, Counter: 10, Verb: "ping"})
	if err != nil {
		t.Fatal(err)
	}
	take := func(d *daemon, id, from, text string) bool {
		t.Helper()
		taken, err := d.smsCommand(ctx, messaging.Inbound{ID: id, From: from, Text: text})
		if err != nil {
			t.Fatal(err)
		}
		return taken
	}
	replies := func(d *daemon) int {
		n, err := d.st.OutboxLen()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if !take(d, "m1", "+4915112345678", ping) || replies(d) != 1 {
		t.Fatalf("ping: taken, %d replies", replies(d))
	}
	if !take(d, "m1", "+4915112345678", ping) || replies(d) != 1 || d.smsCmds.refused.Load() != 0 {
		t.Fatalf("redelivered ping: %d replies, %d refused", replies(d), d.smsCmds.refused.Load())
	}
	if !take(d, "m2", "+4915112345678", ping) || replies(d) != 1 || d.smsCmds.refused.Load() != 1 {
		t.Fatalf("replayed ping: %d replies, %d refused", replies(d), d.smsCmds.refused.Load())
	}
	forged, _ := smscmd.Sign([]byte(strings.Repeat("f", 32)), cmdICCID, smscmd.Message{Kind: smscmd.Command, Counter: 11, Verb: "ping"})
	for i, m := range []struct{ from, text string }{
		{"+4915112345678", forged},
		{"+4900000000", ping},
		{"+4915112345678", ping[:30]},
		{"+4915112345678", "#CA1"},
	} {
		if !take(d, "f"+string(rune('a'+i)), m.from, m.text) {
			t.Errorf("%q from %s not taken", m.text, m.from)
		}
	}
	if take(d, "p1", "+4915112345678", "#ca1 is not a command") || take(d, "p2", "+4915112345678", "hello") {
		t.Error("an ordinary SMS was taken")
	}
	if d.smsCmds.run.Load() != 1 {
		t.Errorf("%d commands run, want 1", d.smsCmds.run.Load())
	}
	if got := d.smsCmds.refused.Load(); got != 5 || replies(d) != 1 {
		t.Errorf("%d refused, %d replies; want 5 and 1", got, replies(d))
	}
	events := 0
	for _, e := range d.pending {
		if e.Msg == "SMS command refused" {
			events++
			if strings.Contains(e.Attr("reason")+e.Msg, "#CA1") {
				t.Errorf("event carries the text: %+v", e)
			}
		}
	}
	if events != 1 {
		t.Errorf("%d refusal events, want 1", events)
	}

	// After a restart the guard still holds.
	d.st.Close()
	d2 := cmdDaemon(t, path, key)
	if !take(d2, "m1", "+4915112345678", ping) || !take(d2, "m3", "+4915112345678", ping) || replies(d2) != 1 || d2.smsCmds.refused.Load() != 1 {
		t.Errorf("after a restart: %d replies, %d refused", replies(d2), d2.smsCmds.refused.Load())
	}
	next, _ := smscmd.Sign(key, cmdICCID, smscmd.Message{Kind: smscmd.Command, Counter: 12, Verb: "ping"})
	if !take(d2, "m4", "+4915112345678", next) || replies(d2) != 2 {
		t.Errorf("a fresh command after a restart: %d replies", replies(d2))
	}
}

// The ladder's refusals become one reply field each, read from the
// supervisor's own messages.
func TestRefusalFields(t *testing.T) {
	for _, c := range []struct{ msg, want string }{
		{`supervisor: unknown step "format" (want one of reattach, cfun-reset)`, "unknown-step"},
		{"supervisor: reattach: hourly budget (3) used; next allowed at 2026-12-04T21:00:00Z", "budget"},
		{"supervisor: reboot: disabled by its configuration (no budget)", "budget"},
		{"supervisor: bsc-reset: last run less than 30m0s ago; next allowed at 2026-12-04T21:00:00Z", "too-soon"},
		{"supervisor: bsc-reset: the operator API is not configured ([bsc] base_url)", "unavailable"},
		{"supervisor: reattach is already scheduled", "already-scheduled"},
		{"supervisor: something new", "refused"},
	} {
		if got := refusal(errors.New(c.msg)); got != c.want || !smscmd.Token(got) {
			t.Errorf("%q: %q, want %q", c.msg, got, c.want)
		}
	}
}

// The status reply names the bearer by its own state, with the
// interface once it is up, between the packet attach and the reading's
// age; without a bearer ([data] mode off) it has no br field, as
// status.json has no bearer section.
func TestSMSCommandStatusBearer(t *testing.T) {
	rssi, rsrp, att, down := -71, -99, true, false
	base := statusView{
		modem: &mqtt.Telemetry{Reg: mqtt.Registration{EPS: "home"}, Act: "CAT-M1", RSSI: &rssi, RSRP: &rsrp, Attached: &att},
		age:   3 * time.Second, ladder: &supervisor.Snapshot{State: supervisor.StateHealthy},
		events: 2, telemetry: 1, mqtt: &down,
	}
	if got := strings.Join(statusReply(base), " "); got != "reg=home act=CAT-M1 rssi=-71 rsrp=-99 att=1 age=3 ladder=healthy q=2/1/0 mqtt=down" {
		t.Errorf("no bearer: %q", got)
	}
	for _, c := range []struct {
		state bearer.State
		want  string
	}{
		{bearer.StateUp, "br=up/ppp0"},
		{bearer.StateOff, "br=off"},
		{bearer.StateDialing, "br=dialing"},
		{bearer.StateConnected, "br=connected"},
		{bearer.StateBackoff, "br=backoff"},
		{bearer.StateBlocked, "br=blocked"},
		{bearer.StateDown, "br=down"},
	} {
		v := base
		v.bearer = &bearer.Snapshot{Mode: bearer.ModePPP, State: c.state, Interface: "ppp0"}
		got := statusReply(v)
		if i := slices.Index(got, c.want); i != 5 || got[4] != "att=1" || got[6] != "age=3" {
			t.Errorf("%s: %q, want %q between att and age", c.state, got, c.want)
		}
	}
	v := base
	v.modem, v.bearer = nil, &bearer.Snapshot{Mode: bearer.ModeExternal, State: bearer.StateUp, Interface: "wwan0"}
	if got := strings.Join(statusReply(v), " "); !strings.HasPrefix(got, "modem=unknown br=up/wwan0 ladder=") {
		t.Errorf("modem unknown: %q", got)
	}
}

// The reply fits one SMS with the longest value of every field: the
// largest counter a command can carry, the longest registration state,
// a 15-character interface (IFNAMSIZ), the longest ladder state and
// step, deep queues. Fields go from the end, the bearer's last; the
// reply still verifies. A bad day with the fleet's own counters keeps
// the bearer, the ladder and the queue depths.
func TestSMSCommandStatusWorstCase(t *testing.T) {
	key := []byte(strings.Repeat("k", 32))
	rssi, rsrp, att, down := -113, -140, false, false
	worst := statusView{
		modem:  &mqtt.Telemetry{Reg: mqtt.Registration{CS: "roaming-csfb-not-preferred"}, Act: "TDSCDMA", RSSI: &rssi, RSRP: &rsrp, Attached: &att},
		age:    1000000 * time.Second,
		bearer: &bearer.Snapshot{Mode: bearer.ModeExternal, State: bearer.StateUp, Interface: "wwan-cellular-0"},
		ladder: &supervisor.Snapshot{State: supervisor.StateUnresponsive, Step: supervisor.StepPowerCycle},
		events: 100000, telemetry: 100000, outbox: 100000, mqtt: &down,
	}
	bad := statusView{
		modem:  &mqtt.Telemetry{Reg: mqtt.Registration{EPS: "searching"}, Act: "CAT-M1", RSSI: &rssi, RSRP: &rsrp, Attached: &att},
		age:    12 * time.Second,
		bearer: &bearer.Snapshot{Mode: bearer.ModePPP, State: bearer.StateBackoff, Interface: "ppp0"},
		ladder: &supervisor.Snapshot{State: supervisor.StateDown, Step: supervisor.StepReattach},
		events: 12, telemetry: 340, outbox: 1, mqtt: &down,
	}
	for _, c := range []struct {
		name    string
		counter uint64
		v       statusView
		keep    []string
	}{
		{"worst", math.MaxUint64, worst, []string{"reg=roaming-csfb-not-preferred", "rssi=-113", "rsrp=-140", "att=0", "br=up/wwan-cellular-0"}},
		{"bad day", uint64(time.Date(2026, 12, 4, 22, 0, 0, 0, time.UTC).UnixMicro()), bad,
			[]string{"reg=searching", "rsrp=-140", "br=backoff", "ladder=down/reattach", "q=12/340/1"}},
	} {
		fields := statusReply(c.v)
		for _, f := range fields {
			if !smscmd.Token(f) {
				t.Errorf("%s: field %q is not a token", c.name, f)
			}
		}
		cmd := smscmd.Message{Kind: smscmd.Command, Counter: c.counter, Verb: "status"}
		text, err := signReply(key, cmdICCID, cmd, append([]string{"ok"}, fields...))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		m, err := smscmd.Verify(key, cmdICCID, text)
		if err != nil || len(text) > smscmd.MaxLen {
			t.Fatalf("%s: %d characters %q: %v", c.name, len(text), text, err)
		}
		if len(m.Args) < 2 || m.Args[0] != "ok" || !slices.Equal(m.Args[1:], fields[:len(m.Args)-1]) {
			t.Errorf("%s: fields %q are not a prefix of %q", c.name, m.Args, fields)
		}
		for _, k := range c.keep {
			if !slices.Contains(m.Args, k) {
				t.Errorf("%s: %q lost from %q", c.name, k, text)
			}
		}
		t.Logf("%s: %d characters, %d of %d fields: %s", c.name, len(text), len(m.Args)-1, len(fields), text)
	}
}

// A field longer than a token, such as an access technology string a
// modem made up, is cut: the reply still goes out, signed.
func TestSMSCommandReplyLongField(t *testing.T) {
	key := []byte(strings.Repeat("k", 32))
	long := "act=" + strings.Repeat("X", 60)
	cmd := smscmd.Message{Kind: smscmd.Command, Counter: 7, Verb: "status"}
	text, err := signReply(key, cmdICCID, cmd, []string{"ok", long, "att=1"})
	if err != nil {
		t.Fatalf("reply with a %d-character field: %v", len(long), err)
	}
	m, err := smscmd.Verify(key, cmdICCID, text)
	if err != nil {
		t.Fatalf("%q: %v", text, err)
	}
	if want := long[:smscmd.MaxToken]; len(m.Args) < 2 || m.Args[1] != want {
		t.Errorf("args %q, want the field cut to %q", m.Args, want)
	}
}
