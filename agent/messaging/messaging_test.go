package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"cellagent/agent/config"
	"cellagent/agent/ratelimit"
	"cellagent/agent/store"
	"cellagent/modem/at"
	"cellagent/modem/bg96emu"
	"cellagent/modem/bg96emu/bg96emutest"
	"cellagent/modem/clock/clocktest"
)

// rig is a simulated modem on a real pty, an engine on it in PDU mode, and
// a store in a temporary directory.
type rig struct {
	m  *bg96emu.Modem
	a  *at.AT
	st *store.Store
}

func newRig(t *testing.T, cfg bg96emu.Config) *rig {
	t.Helper()
	if cfg.ReportDelay == 0 {
		cfg.ReportDelay = 50 * time.Millisecond
	}
	m, a := smsModem(t, cfg)
	st, err := store.Open(filepath.Join(t.TempDir(), "state", "agent.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &rig{m: m, a: a, st: st}
}

// smsModem starts the simulator (booting and registering in a few hundred
// milliseconds unless cfg says otherwise) and an engine on it, set up for
// SMS in PDU mode as the agent sets it.
func smsModem(tb testing.TB, cfg bg96emu.Config) (*bg96emu.Modem, *at.AT) {
	tb.Helper()
	if cfg.BootDelay == 0 {
		cfg.BootDelay = 200 * time.Millisecond
	}
	if cfg.RegisterDelay == 0 {
		cfg.RegisterDelay = 100 * time.Millisecond
	}
	m := bg96emutest.Start(tb, cfg)
	a := bg96emutest.Engine(tb, m)
	for _, c := range []string{"ATE0", "AT+CMEE=2", "AT+CMGF=0", "AT+CNMI=2,1,0,1,0", `AT+CPMS="SM","SM","SM"`} {
		if _, err := a.Command(context.Background(), c); err != nil {
			tb.Fatalf("%s: %v", c, err)
		}
	}
	return m, a
}

// inbox runs an inbox until the test ends.
func (r *rig) inbox(t *testing.T, cfg InboxConfig) {
	t.Helper()
	cfg.Store = r.st
	in := NewInbox(r.a, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = in.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func pending(t *testing.T, st *store.Store) []Inbound {
	t.Helper()
	items, err := st.Pending(1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []Inbound
	for _, it := range items {
		var m Inbound
		if err := json.Unmarshal(it.Rec, &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestInboxTakesEverythingOffTheSIM(t *testing.T) {
	r := newRig(t, bg96emu.Config{})
	// Before the inbox runs: the start-up sweep must find these.
	if err := r.m.DeliverText("+491701234567", "first {€}"); err != nil {
		t.Fatal(err)
	}
	if err := r.m.DeliverRawPDU("07911326040000F0040B911346610089F60000"); err != nil {
		t.Fatal(err)
	}
	r.inbox(t, InboxConfig{Sweep: time.Hour})
	// While it runs: +CMTI brings these in, a long one out of order.
	long := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 10)
	if err := r.m.DeliverParts("+4917099", long, 3, 1, 2); err != nil {
		t.Fatal(err)
	}
	if err := r.m.DeliverText("+4917055", "Grüße 😀"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "four messages in the inbox", func() bool { return len(pending(t, r.st)) == 4 })
	eventually(t, "an empty SIM", func() bool { return len(r.m.Stored()) == 0 })

	got := map[string]Inbound{}
	var corrupt Inbound
	for _, m := range pending(t, r.st) {
		if m.Error != "" {
			corrupt = m
			continue
		}
		got[m.From] = m
	}
	if m := got["+491701234567"]; m.Text != "first {€}" || m.Alphabet != "GSM 7-bit" || m.ID == "" {
		t.Errorf("GSM7 message %+v", m)
	}
	if m := got["+4917099"]; m.Text != long || m.Parts != 3 || len(m.Missing) != 0 || len(m.PDUs) != 3 {
		t.Errorf("concatenated message: parts %d missing %v text %q", m.Parts, m.Missing, m.Text)
	}
	if m := got["+4917055"]; m.Text != "Grüße 😀" {
		t.Errorf("UCS-2 message %+v", m)
	}
	if corrupt.Error == "" || len(corrupt.PDUs) != 1 || corrupt.PDUs[0] != "07911326040000F0040B911346610089F60000" {
		t.Errorf("corrupt PDU not kept raw with its error: %+v", corrupt)
	}
}

// newSetClock is a wall clock the test moves.
func newSetClock() *clocktest.Fake { return clocktest.New(time.Now(), 0) }

func TestInboxIncompleteAfterTimeout(t *testing.T) {
	r := newRig(t, bg96emu.Config{})
	clock := newSetClock()
	in := NewInbox(r.a, InboxConfig{Store: r.st, Reassembly: time.Hour, Sweep: time.Hour, Clock: clock})
	if err := r.m.DeliverParts("+4917099", strings.Repeat("x", 400), 1, 3); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	eventually(t, "both parts on the SIM", func() bool { return len(r.m.Stored()) == 2 })
	if err := in.cycle(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(pending(t, r.st)); n != 0 {
		t.Fatalf("%d messages before the timeout", n)
	}
	// A restart keeps the parts and their age.
	in = NewInbox(r.a, InboxConfig{Store: r.st, Reassembly: time.Hour, Sweep: time.Hour, Clock: clock})
	if err := in.restoreParts(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour)
	if err := in.cycle(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := pending(t, r.st)
	if len(msgs) != 1 || msgs[0].Parts != 3 || len(msgs[0].Missing) != 1 || msgs[0].Missing[0] != 2 {
		t.Fatalf("incomplete message %+v", msgs)
	}
}

// Parts waiting for the rest keep their true age across a restart after
// the wall clock was stepped forward, within a boot; after a reboot
// nothing tells the step.
func TestInboxPartsAcrossClockStep(t *testing.T) {
	for _, c := range []struct {
		boot    string // of the restart; the parts were taken in b1
		expired bool
	}{{"b1", false}, {"b2", true}} {
		r := newRig(t, bg96emu.Config{})
		clock := newSetClock()
		up := time.Hour
		boot := func() (string, time.Duration) { return "b1", up }
		in := NewInbox(r.a, InboxConfig{Store: r.st, Reassembly: time.Hour, Sweep: time.Hour, Clock: clock, Boot: boot})
		if err := r.m.DeliverParts("+4917099", strings.Repeat("y", 400), 1, 3); err != nil {
			t.Fatal(err)
		}
		eventually(t, "both parts on the SIM", func() bool { return len(r.m.Stored()) == 2 })
		if err := in.cycle(context.Background()); err != nil {
			t.Fatal(err)
		}
		// Down for a minute, during which NTP steps the clock 2 h forward.
		clock.Advance(2*time.Hour + time.Minute)
		up += time.Minute
		in = NewInbox(r.a, InboxConfig{Store: r.st, Reassembly: time.Hour, Sweep: time.Hour, Clock: clock,
			Boot: func() (string, time.Duration) { return c.boot, up }})
		if err := in.restoreParts(); err != nil {
			t.Fatal(err)
		}
		if err := in.cycle(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := len(pending(t, r.st)); (n == 1) != c.expired {
			t.Errorf("restart in boot %s: %d messages published, want the parts expired: %v", c.boot, n, c.expired)
		}
	}
}

func TestInboxWaitsForSpaceAndPublishes(t *testing.T) {
	// More messages than SIM slots: the network holds the rest until the
	// inbox frees slots, as a real SMSC retries.
	r := newRig(t, bg96emu.Config{StorageSize: 3})
	var mu sync.Mutex
	var published []string
	fail := true
	publish := func(_ context.Context, m Inbound) error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			fail = false
			return errors.New("broker away")
		}
		published = append(published, m.Text)
		return nil
	}
	r.inbox(t, InboxConfig{Sweep: 200 * time.Millisecond, Publish: publish})
	const n = 12
	for i := 0; i < n; i++ {
		if err := r.m.DeliverText("+4917011", "msg "+string(rune('A'+i))); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "all messages published", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(published) == n
	})
	if r.m.Pending() != 0 || len(r.m.Stored()) != 0 {
		t.Errorf("left behind: %d in the network, %d on the SIM", r.m.Pending(), len(r.m.Stored()))
	}
	mu.Lock()
	sort.Strings(published)
	mu.Unlock()
	for i, text := range published {
		if want := "msg " + string(rune('A'+i)); text != want {
			t.Errorf("published[%d] = %q, want %q", i, text, want)
		}
	}
	// Marked published right after the publisher returned.
	eventually(t, "nothing pending", func() bool { return len(pending(t, r.st)) == 0 })
}

func outbox(t *testing.T, r *rig, cfg OutboxConfig) *Outbox {
	t.Helper()
	cfg.Store = r.st
	o, err := NewOutbox(r.a, cfg)
	if err != nil {
		t.Fatal(err)
	}
	runOutbox(t, o)
	return o
}

// runOutbox runs o until the test ends.
func runOutbox(t *testing.T, o *Outbox) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = o.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func TestOutboxSendsAndMatchesReport(t *testing.T) {
	r := newRig(t, bg96emu.Config{})
	r.inbox(t, InboxConfig{Sweep: time.Hour}) // brings in the status report
	o := outbox(t, r, OutboxConfig{SMSC: "+882 285 00001 6860"})
	id, parts, err := o.Submit(Request{To: "5432145", Text: "hello", Report: true})
	if err != nil || parts != 1 {
		t.Fatalf("submit: %v parts %d", err, parts)
	}
	eventually(t, "delivered", func() bool {
		it, err := r.st.Get(id)
		return err == nil && it.State == store.Delivered
	})
	sent := r.m.SentMessages()
	if len(sent) != 1 || sent[0].Text != "hello" || sent[0].To != "5432145" {
		t.Fatalf("sent %+v", sent)
	}
	// The same request id again is the same message, not a second SMS.
	id2, _, err := o.Submit(Request{ID: "cmd-1", To: "5432145", Text: "once"})
	if err != nil {
		t.Fatal(err)
	}
	if id3, _, err := o.Submit(Request{ID: "cmd-1", To: "5432145", Text: "once"}); err != nil || id3 != id2 {
		t.Fatalf("redelivered request: %q %v", id3, err)
	}
	eventually(t, "the second message sent", func() bool { return len(r.m.SentMessages()) == 2 })
	time.Sleep(100 * time.Millisecond)
	if n := len(r.m.SentMessages()); n != 2 {
		t.Errorf("%d messages sent, want 2", n)
	}
}

func TestOutboxRetriesTransientAndFailsPermanent(t *testing.T) {
	r := newRig(t, bg96emu.Config{})
	o := outbox(t, r, OutboxConfig{BaseDelay: 50 * time.Millisecond})
	if err := r.m.CMSErrorOn("+CMGS", 332); err != nil { // network timeout
		t.Fatal(err)
	}
	id, _, err := o.Submit(Request{To: "+491701234567", Text: "retry me"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "a failed attempt", func() bool {
		it, err := r.st.Get(id)
		return err == nil && it.Attempts >= 2 && it.State == store.Queued
	})
	r.m.ClearFaults()
	eventually(t, "sent after the fault cleared", func() bool {
		it, err := r.st.Get(id)
		return err == nil && it.State == store.Sent
	})

	if err := r.m.CMSErrorOn("+CMGS", 21); err != nil { // short message transfer rejected
		t.Fatal(err)
	}
	id, _, err = o.Submit(Request{To: "+491701234567", Text: "rejected"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "failed for good", func() bool {
		it, err := r.st.Get(id)
		return err == nil && it.State == store.Failed && it.Code == 21 && it.Attempts == 1
	})
}

// A retry scheduled before the wall clock was set back is further ahead
// than any back-off: it goes out now, not once the clock catches up.
func TestOutboxRetryAfterClockSetBack(t *testing.T) {
	r := newRig(t, bg96emu.Config{})
	o, err := NewOutbox(r.a, OutboxConfig{Store: r.st, MaxDelay: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := o.Submit(Request{To: "+491701234567", Text: "from before the step"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.st.MarkSending(id); err != nil {
		t.Fatal(err)
	}
	if err := r.st.MarkRetry(id, time.Now().Add(2*time.Hour), "network timeout"); err != nil {
		t.Fatal(err)
	}
	runOutbox(t, o)
	eventually(t, "the retry sent", func() bool {
		it, err := r.st.Get(id)
		return err == nil && it.State == store.Sent
	})
}

func TestOutboxRefusesBadRequestsAndLimits(t *testing.T) {
	r := newRig(t, bg96emu.Config{})
	// The limits come from a configuration file as an operator writes it.
	cfg, err := config.Parse([]byte("[sms]\nper_minute = 0\nper_hour = 0\nper_day = 3\nper_destination_per_day = 2\n"), "gw.toml")
	if err != nil {
		t.Fatal(err)
	}
	lim, err := ratelimit.New(Limits(cfg.SMS), nil)
	if err != nil {
		t.Fatal(err)
	}
	o := outbox(t, r, OutboxConfig{Limiter: lim})
	for _, req := range []Request{
		{To: "not a number", Text: "x"},
		{To: "+4917", Text: strings.Repeat("y", 40000)},
		{To: "+4917"},
		{To: "+4917", Text: "x", Data: []byte{1}},
	} {
		if _, _, err := o.Submit(req); err == nil {
			t.Errorf("accepted %+v", req)
		}
	}
	for i := 0; i < 2; i++ {
		if _, _, err := o.Submit(Request{To: "+4917011", Text: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err = o.Submit(Request{To: "+4917011", Text: "third"})
	var le *ratelimit.LimitError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "+4917011") {
		t.Fatalf("per-destination limit: %v", err)
	}
	if _, _, err := o.Submit(Request{To: "+4917022", Text: "other"}); err != nil {
		t.Fatalf("another destination: %v", err)
	}
	_, _, err = o.Submit(Request{To: "+4917033", Text: "fourth"})
	if !errors.As(err, &le) || le.Scope != "global" {
		t.Fatalf("global limit: %v", err)
	}
	// The budget survives a restart.
	lim2, _ := ratelimit.New(Limits(cfg.SMS), nil)
	o2, err := NewOutbox(r.a, OutboxConfig{Store: r.st, Limiter: lim2})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := o2.Submit(Request{To: "+4917011", Text: "after restart"}); !errors.As(err, &le) {
		t.Fatalf("limit forgotten after restart: %v", err)
	}
}
