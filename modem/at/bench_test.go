package at_test

import (
	"context"
	"testing"
	"time"

	"cellagent/modem/at"
	"cellagent/modem/bg96emu"
	"cellagent/modem/bg96emu/bg96emutest"
)

// BenchmarkRoundTrip measures AT round trips through the simulator over a
// real pty at 115200 baud (8N1: 11,520 bytes/s each way). line-% is the
// share of the line-rate limit achieved: the time the command and its answer
// need on the wire divided by the time the round trip took. The raw case is
// the same exchange without the engine, so the difference is the engine's.
func BenchmarkRoundTrip(b *testing.B) {
	for _, cmd := range []string{"AT+CSQ", "AT+QCSQ", "ATI"} {
		b.Run(cmd, func(b *testing.B) {
			a, m := benchEngine(b, 0)
			ctx := context.Background()
			before := m.Stats()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if _, err := a.Command(ctx, cmd); err != nil {
					b.Fatal(err)
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			after := m.Stats()
			wire := after.BytesIn - before.BytesIn + after.BytesOut - before.BytesOut
			ideal := time.Duration(wire) * time.Second / 11520
			b.ReportMetric(float64(wire)/float64(b.N), "wire-B/op")
			b.ReportMetric(100*ideal.Seconds()/elapsed.Seconds(), "line-%")
		})
	}
}

// BenchmarkRoundTripUnpaced is the same exchange with the simulator's
// pacing off: what is left is the engine, the pty and the scheduler.
func BenchmarkRoundTripUnpaced(b *testing.B) {
	a, _ := benchEngine(b, bg96emu.NoPacing)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := a.Command(ctx, "AT+CSQ"); err != nil {
			b.Fatal(err)
		}
	}
}

// benchEngine starts a simulator with the given pacing (0: 115200 baud)
// and an engine on it with echo off, as after the agent's init.
func benchEngine(b *testing.B, baud int) (*at.AT, *bg96emu.Modem) {
	b.Helper()
	m := bg96emutest.Start(b, bg96emu.Config{Baud: baud})
	a := bg96emutest.Engine(b, m)
	if _, err := a.Command(context.Background(), "ATE0"); err != nil {
		b.Fatal(err)
	}
	return a, m
}
