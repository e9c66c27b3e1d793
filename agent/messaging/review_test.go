package messaging

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	wsms "github.com/warthog618/sms"
	"github.com/warthog618/sms/encoding/tpdu"

	"cellagent/agent/store"
	"cellagent/modem/at"
	"cellagent/modem/sms"
)

// fakePort is an in-process Port: AT+CMGL=4 answers with listing, AT+CMGD
// records the index, URC handlers are kept so a test can fire them.
type fakePort struct {
	mu       sync.Mutex
	listing  []string
	deleted  []int
	handlers map[string]at.Handler
	sendErr  error
	sent     int
}

func newFakePort() *fakePort { return &fakePort{handlers: map[string]at.Handler{}} }

func (f *fakePort) Command(_ context.Context, cmd string, _ ...at.CommandOption) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case cmd == "AT+CMGL=4":
		return append([]string(nil), f.listing...), nil
	case strings.HasPrefix(cmd, "AT+CMGD="):
		var n int
		fmt.Sscanf(cmd, "AT+CMGD=%d", &n)
		f.deleted = append(f.deleted, n)
		return nil, nil
	}
	return nil, nil
}

func (f *fakePort) SMSCommand(context.Context, string, string, ...at.CommandOption) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent++
	if f.sendErr != nil {
		return nil, f.sendErr
	}
	return []string{"+CMGS: 7"}, nil
}

func (f *fakePort) AddIndication(prefix string, h at.Handler) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handlers[prefix] = h
	return func() {}
}

func openStore(t *testing.T, o store.Options) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "agent.db"), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

const (
	pduTest2 = "06917228195339040B917228214365F700003130805120618005D4F29C2E03"
	pduHallo = "06917228195339040A91896745230100003130805120618013C8309BFD56A0DF65D0391C7683C869FA0F"
)

// A +CMT message never touches the SIM: when the store refuses it (full),
// it must wait in memory for the next round, not vanish.
func TestInboxDirectMessagesSurviveStoreFull(t *testing.T) {
	st := openStore(t, store.Options{MaxInbox: 1})
	p := newFakePort()
	in := NewInbox(p, InboxConfig{Store: st})
	for _, pdu := range []string{pduTest2, pduHallo} {
		in.direct = append(in.direct, sms.ParseCMT([]string{"+CMT: ,23", pdu}))
	}
	if err := in.cycle(context.Background()); !errors.Is(err, store.ErrFull) {
		t.Fatalf("first round: %v, want ErrFull", err)
	}
	items, err := st.Pending(10)
	if err != nil || len(items) != 1 {
		t.Fatalf("pending %d, %v", len(items), err)
	}
	if err := st.MarkPublished(items[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := in.cycle(context.Background()); err != nil {
		t.Fatalf("second round: %v", err)
	}
	items, _ = st.Pending(10)
	if len(items) != 1 {
		t.Fatalf("the second +CMT message was lost: %d pending after the store drained", len(items))
	}
}

// A +CMGL header whose PDU line did not arrive names a slot whose message
// we never read: storing the header is fine, deleting the slot is not.
func TestSweepKeepsSlotWhosePDUWasNotRead(t *testing.T) {
	st := openStore(t, store.Options{})
	p := newFakePort()
	p.listing = []string{
		"+CMGL: 0,1,,24", pduTest2,
		"+CMGL: 1,1,,40", // PDU line lost (framing fault, another reader on the port)
		"+CMGL: 2,1,,41", pduHallo,
	}
	in := NewInbox(p, InboxConfig{Store: st})
	if err := in.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range p.deleted {
		if d == 1 {
			t.Fatalf("slot 1 deleted though its PDU was never read (deleted %v)", p.deleted)
		}
	}
	if len(p.deleted) != 2 {
		t.Errorf("deleted %v, want slots 0 and 2", p.deleted)
	}
}

// An item found in "sending" after a crash goes back to the queue with
// its attempt counted. A message whose send kills the agent every time must
// not be sent again and again, without end.
func TestOutboxGivesUpOnMessagesInterruptedTooOften(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.db")
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id, err := st.Enqueue([]byte(`{"to":"5432145","text":"crash me"}`))
	if err != nil {
		t.Fatal(err)
	}
	const maxAttempts = 3
	// Each "run" takes the item to sending and dies before the outcome.
	for range maxAttempts {
		if err := st.MarkSending(id); err != nil {
			t.Fatal(err)
		}
		st.Close()
		if st, err = store.Open(path, store.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { st.Close() })
	p := newFakePort()
	o, err := NewOutbox(p, OutboxConfig{Store: st, MaxAttempts: maxAttempts})
	if err != nil {
		t.Fatal(err)
	}
	it, ok, err := st.Next(time.Now())
	if err != nil || !ok {
		t.Fatalf("next: %v %v", ok, err)
	}
	if err := o.send(context.Background(), it); err != nil {
		t.Fatal(err)
	}
	got, _ := st.Get(id)
	if p.sent != 0 || got.State != store.Failed {
		t.Fatalf("after %d interrupted attempts: sent again %d times, state %s; want no send and failed", maxAttempts, p.sent, got.State)
	}
	if !strings.Contains(got.Reason, "interrupted") {
		t.Errorf("reason %q does not say why", got.Reason)
	}
}

// concatPDUs encodes text from from as SMS-DELIVER parts with the first
// concatenation reference, SMSC field empty, as hex.
func concatPDUs(t *testing.T, from, text string, scts time.Time) []string {
	t.Helper()
	e := wsms.NewEncoder(wsms.AsDeliver, wsms.From(from))
	e.ConcatRef = &wsms.Counter{}
	tpdus, err := e.Encode([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := range tpdus {
		tpdus[i].SCTS = tpdu.Timestamp{Time: scts}
		b, err := tpdus[i].MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("00%X", b))
	}
	return out
}

// SMSCs number concatenated messages with an 8-bit reference, so a sender
// reuses one while an older message with it still waits for a lost part.
// The store holds both first parts; the joined message must not silently
// swallow the one the assembler did not use.
func TestInboxKeepsPartWithReusedReference(t *testing.T) {
	st := openStore(t, store.Options{})
	in := NewInbox(newFakePort(), InboxConfig{Store: st, Reassembly: time.Hour})
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	x := concatPDUs(t, "+491701234567", strings.Repeat("old message ", 20), t0)
	y := concatPDUs(t, "+491701234567", strings.Repeat("new message ", 20), t0.Add(time.Hour))
	if len(x) != 2 || len(y) != 2 {
		t.Fatalf("want 2 parts each, got %d and %d", len(x), len(y))
	}
	for _, pdu := range []string{x[0], y[0], y[1]} {
		if err := in.take(sms.DecodeHex(pdu), t0); err != nil {
			t.Fatal(err)
		}
	}
	var kept []string
	for _, m := range pending(t, st) {
		kept = append(kept, m.PDUs...)
	}
	groups, err := st.PartGroups()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		ps, _ := st.Parts(g.Key)
		for _, p := range ps {
			kept = append(kept, string(p.Rec))
		}
	}
	all := strings.Join(kept, " ")
	for i, pdu := range []string{x[0], y[0], y[1]} {
		if !strings.Contains(all, pdu) {
			t.Errorf("PDU %d (%.30s…) is in neither a stored message nor a held part: lost", i, pdu)
		}
	}
}
