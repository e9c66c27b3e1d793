package messaging

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cellagent/agent/store"
	"cellagent/modem/bg96emu"
)

// lineRate is what the simulator's 115200 baud 8N1 line carries each way:
// 10 bits a byte.
const lineRate = 115200 / 10

// benchRig is newRig for benchmarks, with a store that signals every
// outbox result: a send is complete when MarkSent journals it.
func benchRig(b *testing.B, cfg bg96emu.Config, onResult func()) *rig {
	b.Helper()
	m, a := smsModem(b, cfg)
	return &rig{m: m, a: a, st: benchStore(b, onResult)}
}

func benchStore(b *testing.B, onResult func()) *store.Store {
	b.Helper()
	st, err := store.Open(filepath.Join(b.TempDir(), "agent.db"), store.Options{OnResult: onResult})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// reportWire reports the bytes both ways on the line per op, the time they
// take at line rate (the exchange is a dialogue, so the directions add up)
// and how many times that the op took.
func reportWire(b *testing.B, before, after bg96emu.Stats, elapsed time.Duration) {
	bytes := float64(after.BytesIn+after.BytesOut-before.BytesIn-before.BytesOut) / float64(b.N)
	wire := bytes / lineRate // seconds
	b.ReportMetric(bytes, "line-B/op")
	b.ReportMetric(wire*1000, "wire-ms/op")
	b.ReportMetric(elapsed.Seconds()/float64(b.N)/wire, "x-wire")
}

// BenchmarkWireSendConcatenated sends a 10-part message (1530 GSM 7-bit
// characters) through the outbox, from Submit until the store records it
// sent: ten AT+CMGS dialogues on the paced line, and the store's commits.
//
//	go test -run '^$' -bench Wire -benchtime 5x ./agent/messaging/
func BenchmarkWireSendConcatenated(b *testing.B) {
	done := make(chan struct{}, 1)
	r := benchRig(b, bg96emu.Config{}, func() {
		select {
		case done <- struct{}{}:
		default:
		}
	})
	o, err := NewOutbox(r.a, OutboxConfig{Store: r.st, SMSC: "+882 285 00001 6860"})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = o.Run(ctx) }()
	text := strings.Repeat("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz.", 24)[:1530]

	before := r.m.Stats()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		id, parts, err := o.Submit(Request{ID: fmt.Sprint("bench-", i), To: "+491701234567", Text: text})
		if err != nil || parts != 10 {
			b.Fatalf("submit: %v (%d parts)", err, parts)
		}
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			b.Fatal("no result within 30 s")
		}
		if it, err := r.st.Get(id); err != nil || it.State != store.Sent {
			b.Fatalf("message %s: %+v %v", id, it, err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if sent := len(r.m.SentMessages()); sent != 10*b.N {
		b.Fatalf("the modem sent %d parts, want %d", sent, 10*b.N)
	}
	reportWire(b, before, r.m.Stats(), elapsed)
}

// BenchmarkWireDrainStored takes 100 MT messages stored on the SIM into
// the store: one AT+CMGL listing, a commit (fsync) and an AT+CMGD each.
func BenchmarkWireDrainStored(b *testing.B) {
	const n = 100
	r := benchRig(b, bg96emu.Config{StorageSize: n}, nil)
	ctx := context.Background()
	var before, after bg96emu.Stats
	var elapsed time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		// A fresh store each round: the dedupe keys of earlier rounds
		// must not make the commits cheaper.
		st := benchStore(b, nil)
		for j := range n {
			// Distinct texts: the store de-duplicates on the PDU.
			if err := r.m.DeliverText("+4917012345", fmt.Sprintf("round %d message %d: meter reading 0042.%03d", i, j, j)); err != nil {
				b.Fatal(err)
			}
		}
		if got := len(r.m.Stored()); got != n {
			b.Fatalf("%d messages on the SIM, want %d", got, n)
		}
		in := NewInbox(r.a, InboxConfig{Store: st})
		s0 := r.m.Stats()
		b.StartTimer()
		start := time.Now()
		if err := in.Sweep(ctx); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
		b.StopTimer()
		s1 := r.m.Stats()
		before.BytesIn, before.BytesOut = before.BytesIn+s0.BytesIn, before.BytesOut+s0.BytesOut
		after.BytesIn, after.BytesOut = after.BytesIn+s1.BytesIn, after.BytesOut+s1.BytesOut
		if left := len(r.m.Stored()); left != 0 {
			b.Fatalf("%d messages left on the SIM", left)
		}
		if got, err := st.Pending(2 * n); err != nil || len(got) != n {
			b.Fatalf("%d messages in the store (%v), want %d", len(got), err, n)
		}
	}
	reportWire(b, before, after, elapsed)
	b.ReportMetric(elapsed.Seconds()*1000/float64(b.N*n), "ms/msg")
}
