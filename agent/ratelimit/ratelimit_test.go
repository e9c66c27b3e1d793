package ratelimit

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"cellagent/modem/clock/clocktest"
)

func newTest(t *testing.T, cfg Config) (*Limiter, *clocktest.Fake) {
	t.Helper()
	c := clocktest.New(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), 0)
	l, err := New(cfg, c)
	if err != nil {
		t.Fatal(err)
	}
	return l, c
}

var cfg = Config{
	Global:  []Window{{time.Minute, 10}, {time.Hour, 20}, {24 * time.Hour, 50}},
	PerDest: []Window{{time.Minute, 3}, {time.Hour, 5}},
}

func limitErr(t *testing.T, err error) *LimitError {
	t.Helper()
	var le *LimitError
	if !errors.As(err, &le) || !errors.Is(err, ErrLimited) {
		t.Fatalf("got %v, want a *LimitError", err)
	}
	return le
}

func TestPerDestinationSlidingWindow(t *testing.T) {
	l, c := newTest(t, cfg)
	for range 3 {
		if err := l.Allow("+4911", 1); err != nil {
			t.Fatal(err)
		}
		c.Advance(10 * time.Second)
	}
	err := l.Allow("+4911", 1)
	le := limitErr(t, err)
	if le.Scope != "destination" || le.Window.Max != 3 || le.Used != 3 {
		t.Fatalf("limit %+v", le)
	}
	// First SMS at 0 s leaves the minute window at 60 s; now is 30 s.
	if le.RetryAfter != 30*time.Second {
		t.Fatalf("RetryAfter %s, want 30s", le.RetryAfter)
	}
	if want := "3 SMS per minute (3 used); retry in 30s"; !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "+4911") {
		t.Fatalf("error %q, want it to contain %q and the destination", err, want)
	}
	if err := l.Allow("+4922", 1); err != nil {
		t.Fatalf("another destination: %v", err)
	}
	c.Advance(30 * time.Second)
	if err := l.Allow("+4911", 1); err != nil {
		t.Fatalf("after RetryAfter: %v", err)
	}
	// The hour budget of 5 now binds: 4 used.
	c.Advance(time.Minute)
	_ = l.Allow("+4911", 1)
	le = limitErr(t, l.Allow("+4911", 1))
	if le.Window.Period != time.Hour || le.RetryAfter != time.Hour-2*time.Minute {
		t.Fatalf("hour limit %+v", le)
	}
}

func TestGlobalLimitAndParts(t *testing.T) {
	l, c := newTest(t, Config{Global: []Window{{time.Minute, 10}}})
	if err := l.Allow("a", 7); err != nil {
		t.Fatal(err)
	}
	c.Advance(20 * time.Second)
	le := limitErr(t, l.Allow("b", 4))
	if le.Scope != "global" || le.Used != 7 || le.Requested != 4 || le.RetryAfter != 40*time.Second {
		t.Fatalf("global limit %+v", le)
	}
	if err := l.Allow("b", 3); err != nil {
		t.Fatalf("3 parts fit: %v", err)
	}
	err := l.Allow("c", 11)
	le = limitErr(t, err)
	if le.RetryAfter != 0 || !strings.Contains(err.Error(), "can never be sent") {
		t.Fatalf("oversized request: %v", err)
	}
}

// A fixed window would let 2×Max through around its boundary.
func TestNoBurstAcrossBoundary(t *testing.T) {
	l, c := newTest(t, Config{Global: []Window{{time.Minute, 5}}})
	c.Advance(59 * time.Second)
	if err := l.Allow("a", 5); err != nil {
		t.Fatal(err)
	}
	c.Advance(2 * time.Second)
	if err := l.Allow("a", 1); !errors.Is(err, ErrLimited) {
		t.Fatalf("just after the minute mark: %v, want limited", err)
	}
}

func TestSnapshotRestore(t *testing.T) {
	l, c := newTest(t, cfg)
	for range 3 {
		_ = l.Allow("+4911", 1)
	}
	snap, err := l.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// A restart: a fresh limiter gets the old budget back.
	l2, err := New(cfg, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := l2.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if err := l2.Allow("+4911", 1); !errors.Is(err, ErrLimited) {
		t.Fatalf("after restore: %v, want limited", err)
	}
	// Entries older than every window are dropped, and so are empty destinations.
	c.Advance(25 * time.Hour)
	snap, _ = l2.Snapshot()
	if strings.Contains(string(snap), "+4911") {
		t.Fatalf("expired snapshot still holds the destination: %s", snap)
	}
	for _, bad := range []string{``, `{"v":3}`, `{"v":1,"global":[{"t":1,"n":0}]}`, `{"v":1,"dests":{"":[]}}`} {
		if err := l2.Restore([]byte(bad)); err == nil {
			t.Errorf("Restore(%q) accepted", bad)
		}
	}
}

// A restart after the wall clock was stepped: within the boot the
// snapshot's entries keep their true age; after a reboot, entries dated
// in the future count as charged at the restart.
func TestRestoreAcrossClockSteps(t *testing.T) {
	hourly := Config{Global: []Window{{time.Hour, 3}}}
	l, c := newTest(t, hourly)
	l.boot = func() (string, time.Duration) { return "b1", time.Hour }
	for range 3 {
		if err := l.Allow("a", 1); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := l.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	saved := c.Now()
	for _, cc := range []struct {
		name string
		step time.Duration // of the wall clock during the 10 minutes down
		boot string
		// the budget is still used up this long after the restart
		usedFor time.Duration
	}{
		{"no step", 0, "b1", 50 * time.Minute},
		{"stepped forward a day", 24 * time.Hour, "b1", 50 * time.Minute},
		{"stepped back five hours", -5 * time.Hour, "b1", 50 * time.Minute},
		{"rebooted, stepped back", -5 * time.Hour, "b2", time.Hour},
	} {
		c2 := clocktest.New(saved.Add(10*time.Minute+cc.step), 0)
		l2, err := New(hourly, c2)
		if err != nil {
			t.Fatal(err)
		}
		l2.boot = func() (string, time.Duration) { return cc.boot, time.Hour + 10*time.Minute }
		if err := l2.Restore(snap); err != nil {
			t.Fatal(err)
		}
		c2.Advance(cc.usedFor - time.Second)
		if err := l2.Allow("a", 1); !errors.Is(err, ErrLimited) {
			t.Errorf("%s: %s after the restart: %v, want limited", cc.name, cc.usedFor-time.Second, err)
		}
		c2.Advance(2 * time.Second)
		if err := l2.Allow("a", 1); err != nil {
			t.Errorf("%s: %s after the restart: %v, want allowed", cc.name, cc.usedFor+time.Second, err)
		}
	}
}

func TestClockStepsBack(t *testing.T) {
	l, c := newTest(t, Config{Global: []Window{{time.Minute, 2}}})
	_ = l.Allow("a", 1)
	c.Step(-10 * time.Minute)
	_ = l.Allow("a", 1)
	// Both entries still count: a clock stepping back must not reopen the budget.
	if err := l.Allow("a", 1); !errors.Is(err, ErrLimited) {
		t.Fatalf("after the clock stepped back: %v, want limited", err)
	}
}

func TestBadConfigAndInput(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no global limit"},
		{Config{Global: []Window{{time.Minute, 0}}}, "positive count"},
		{Config{Global: []Window{{0, 1}}}, "positive count"},
		{Config{Global: []Window{{time.Minute, 1}}, PerDest: []Window{{time.Hour, 1}}}, "longer than the longest global period"},
	} {
		if _, err := New(c.cfg, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v): %v, want %q", c.cfg, err, c.want)
		}
	}
	l, _ := newTest(t, cfg)
	if err := l.Allow("", 1); err == nil || errors.Is(err, ErrLimited) {
		t.Errorf("Allow(\"\"): %v, want a plain error", err)
	}
	if err := l.Allow("a", 0); err == nil || errors.Is(err, ErrLimited) {
		t.Errorf("Allow(a, 0): %v, want a plain error", err)
	}
}

// FuzzRestore: no snapshot crashes Restore, and what it accepts comes
// back from Snapshot unchanged by a second round trip.
func FuzzRestore(f *testing.F) {
	f.Add([]byte(`{"v":1,"global":[{"t":1740830400000000000,"n":2}],"dests":{"+4911":[{"t":1740830400000000000,"n":2}]}}`))
	f.Add([]byte(`{"v":1,"global":[{"t":1740830400000000000,"n":1}],"boot":"b1","saved":1740830400000,"up":3600000}`))
	f.Add([]byte(`{"v":1,"global":[{"t":9223372036854775807,"n":1}],"boot":"other","saved":1,"up":0}`))
	f.Add([]byte(`{"v":1,"global":[{"t":1,"n":0}]}`))
	f.Add([]byte(`{"v":2,"global":[1740830400,2,3,1],"dests":{"+4911":[1740830403,1]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, _ := newTest(t, cfg)
		l.boot = func() (string, time.Duration) { return "b1", 2 * time.Hour }
		if err := l.Restore(b); err != nil {
			return
		}
		snap, err := l.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Restore(snap); err != nil {
			t.Fatalf("re-restoring %s: %v", snap, err)
		}
		again, _ := l.Snapshot()
		if string(again) != string(snap) {
			t.Fatalf("not stable:\n%s\n%s", snap, again)
		}
	})
}

// A version 1 snapshot, as agents before the compact encoding saved it,
// still restores: its charges count, the boot-clock mark corrects a step,
// and the next snapshot is version 2 with the times rounded up to the
// second.
func TestRestoreVersion1(t *testing.T) {
	l, c := newTest(t, cfg)
	l.boot = func() (string, time.Duration) { return "b1", 2 * time.Hour }
	// Saved 20 s ago on both clocks (no step), the charge at 11:59:30.5.
	old := `{"v":1,"global":[{"t":1740830370500000000,"n":2}],"dests":{"+4911":[{"t":1740830370500000000,"n":2}]},"boot":"b1","saved":1740830380000,"up":7180000}`
	if err := l.Restore([]byte(old)); err != nil {
		t.Fatal(err)
	}
	snap, err := l.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if want := `"global":[1740830371,2],"dests":{"+4911":[1740830371,2]}`; !strings.Contains(string(snap), want) || !strings.HasPrefix(string(snap), `{"v":2,`) {
		t.Fatalf("snapshot %s, want version 2 with %s", snap, want)
	}
	// The charge, rounded up to 11:59:31, holds 2 of the 3 per minute for
	// +4911 until 12:00:31, half a second longer than charged.
	if err := l.Allow("+4911", 1); err != nil {
		t.Fatal(err)
	}
	le := limitErr(t, l.Allow("+4911", 1))
	if le.Scope != "destination" || le.Used != 3 {
		t.Fatalf("limit %+v", le)
	}
	c.Advance(30 * time.Second)
	limitErr(t, l.Allow("+4911", 1))
	c.Advance(time.Second)
	if err := l.Allow("+4911", 1); err != nil {
		t.Fatalf("after the v1 charge left the minute: %v", err)
	}
}

// Charges in one second share a pair, later ones are written as the
// seconds since the previous pair, and a restore brings back every charge.
func TestSnapshotVersion2RoundTrip(t *testing.T) {
	big := Config{Global: []Window{{24 * time.Hour, 1000}}, PerDest: []Window{{24 * time.Hour, 1000}}}
	l, c := newTest(t, big)
	for _, step := range []time.Duration{0, 300 * time.Millisecond, 2 * time.Second, 90 * time.Second} {
		c.Advance(step)
		if err := l.Allow("+4911", 1); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := l.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// 12:00:00 and 12:00:00.3 round up to 12:00:00 and 12:00:01.
	if want := `"global":[1740830400,1,1,1,2,1,90,1]`; !strings.Contains(string(snap), want) {
		t.Fatalf("snapshot %s, want %s", snap, want)
	}
	l2, _ := newTest(t, big)
	l2.clock = c
	// One boot-clock reading for both snapshots: the machine's own would
	// move between them.
	l.boot = func() (string, time.Duration) { return "b1", 2 * time.Hour }
	l2.boot = l.boot
	if snap, err = l.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if err := l2.Restore(snap); err != nil {
		t.Fatal(err)
	}
	again, _ := l2.Snapshot()
	if string(again) != string(snap) {
		t.Fatalf("round trip:\n%s\n%s", snap, again)
	}
	for _, bad := range []string{
		`{"v":2,"global":[1740830400]}`,
		`{"v":2,"global":[1740830400,0]}`,
		`{"v":2,"global":[1740830400,1,-1,1]}`,
		`{"v":2,"global":[9223372036854775807,1]}`,
		`{"v":3,"global":[]}`,
	} {
		if err := l2.Restore([]byte(bad)); err == nil {
			t.Errorf("restored %s", bad)
		}
	}
}

// BenchmarkSnapshotSize reports the bytes a snapshot takes after a day of
// sends at per_day SMS, evenly spread, to one destination each.
func BenchmarkSnapshotSize(b *testing.B) {
	for _, perDay := range []int{100, 1000, 10000} {
		b.Run(strconv.Itoa(perDay), func(b *testing.B) {
			c := clocktest.New(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), 0)
			l, err := New(Config{Global: []Window{{24 * time.Hour, perDay}}}, c)
			if err != nil {
				b.Fatal(err)
			}
			every := 24 * time.Hour / time.Duration(perDay)
			for range perDay {
				if err := l.Allow("+491701234567", 1); err != nil {
					b.Fatal(err)
				}
				c.Advance(every - time.Nanosecond)
			}
			var snap []byte
			for b.Loop() {
				if snap, err = l.Snapshot(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(snap)), "snapshot-bytes")
		})
	}
}
