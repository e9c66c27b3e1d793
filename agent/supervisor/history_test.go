package supervisor

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"cellagent/agent/bootclock"
	"cellagent/agent/config"
)

func TestBudget(t *testing.T) {
	cfg := config.StepConfig{PerHour: 2, PerDay: 3, MinInterval: config.Duration{Duration: 10 * time.Minute}}
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	for _, c := range []struct {
		name     string
		taken    []time.Duration
		now      time.Duration
		hour     int
		dayLeft  int
		next     time.Duration // 0: allowed now
		whyStart string
	}{
		{"fresh", nil, 0, 2, 3, 0, ""},
		{"min interval", []time.Duration{0}, 5 * time.Minute, 1, 2, 10 * time.Minute, "last run less than 10m0s ago"},
		{"after the interval", []time.Duration{0}, 10 * time.Minute, 1, 2, 0, ""},
		{"hour full", []time.Duration{0, 20 * time.Minute}, 30 * time.Minute, 0, 1, time.Hour, "hourly budget (2) used"},
		{"oldest left the hour", []time.Duration{0, 20 * time.Minute}, time.Hour, 1, 1, 0, ""},
		{"day full", []time.Duration{0, 20 * time.Minute, 2 * time.Hour}, 3 * time.Hour, 2, 0, 24 * time.Hour, "daily budget (3) used"},
		{"a day later", []time.Duration{0, 20 * time.Minute, 2 * time.Hour}, 24 * time.Hour, 2, 1, 0, ""},
	} {
		h := history{}
		for _, d := range c.taken {
			h.add(stepReboot, at(d))
		}
		b := h.budget(stepReboot, cfg, at(c.now))
		var next time.Duration
		if !b.next.IsZero() {
			next = b.next.Sub(t0)
		}
		if b.hourLeft != c.hour || b.dayLeft != c.dayLeft || next != c.next || !strings.HasPrefix(b.why, c.whyStart) || (c.whyStart == "") != (b.why == "") {
			t.Errorf("%s: %+v (next %s), want %d/h %d/day left, next %s, why %q", c.name, b, next, c.hour, c.dayLeft, c.next, c.whyStart)
		}
	}
	if b := (history{}).budget(stepReboot, config.StepConfig{PerHour: 0, PerDay: 4}, t0); !strings.Contains(b.why, "disabled") {
		t.Errorf("a zero budget: %+v", b)
	}
}

// stampAt is now on a boot clock reading up in boot ("": none).
func stampAt(now time.Time, boot string, up time.Duration) stamp {
	return stamp{now: now, mark: bootclock.Read(now, func() (string, time.Duration) { return boot, up })}
}

func TestSavedRoundTrip(t *testing.T) {
	now := t0.Add(48 * time.Hour)
	in := saved{hist: history{stepReboot: {{At: now.Add(-2 * time.Hour), N: 1}, {At: now.Add(-time.Minute), N: 1}}, stepBSCReset: {{At: now.Add(-time.Hour), N: 1}}},
		rounds: 3, nextRound: now.Add(time.Hour), parkedUntil: now.Add(2 * time.Hour)}
	for _, boot := range []string{"", "b1"} {
		at := stampAt(now, boot, 5*time.Hour)
		b, err := encodeSaved(in, at)
		if err != nil {
			t.Fatal(err)
		}
		out, err := decodeSaved(b, at)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(in, out) {
			t.Errorf("boot %q: round trip:\n got %+v\nwant %+v", boot, out, in)
		}
	}
}

// TestSavedAcrossClockSteps: a wall clock stepped while the agent was
// down shifts the saved records with it within a boot, so a reset made
// ten minutes ago still counts as ten minutes old; across a reboot
// nothing tells the step, and the records are taken as they are.
func TestSavedAcrossClockSteps(t *testing.T) {
	saveAt := stampAt(t0.Add(48*time.Hour), "b1", 5*time.Hour)
	in := saved{hist: history{stepBSCReset: {{At: saveAt.now.Add(-time.Minute), N: 1}}}, nextRound: saveAt.now.Add(time.Minute)}
	b, err := encodeSaved(in, saveAt)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		step time.Duration // of the wall clock, during the 9 minutes down
		boot string
		// want: the record's and the next round's distance from now.
		age, next time.Duration
	}{
		{"no step", 0, "b1", 10 * time.Minute, -8 * time.Minute},
		{"stepped forward a day", 25 * time.Hour, "b1", 10 * time.Minute, -8 * time.Minute},
		{"stepped back two hours", -2 * time.Hour, "b1", 10 * time.Minute, -8 * time.Minute},
		{"rebooted, stepped back", -2 * time.Hour, "b2", 0, 2*time.Hour - 8*time.Minute},
		{"rebooted, stepped forward", 30 * time.Minute, "b2", 40 * time.Minute, -38 * time.Minute},
	} {
		now := saveAt.now.Add(9*time.Minute + c.step)
		out, err := decodeSaved(b, stampAt(now, c.boot, 5*time.Hour+9*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		rec := out.hist[stepBSCReset]
		if len(rec) != 1 || now.Sub(rec[0].At) != c.age || out.nextRound.Sub(now) != c.next {
			t.Errorf("%s: records %v, next round %s, now %s; want a record %s old, the next round in %s",
				c.name, rec, out.nextRound, now, c.age, c.next)
		}
	}
}

func TestDecodeSaved(t *testing.T) {
	now := time.UnixMilli(1_740_000_000_000)
	at := stampAt(now, "b1", time.Hour)
	for _, c := range []struct{ in, want string }{
		{`{"v":3}`, "version 3"},
		{`{"v":1,"boot":"b1","saved":1,"up":1}`, "boot fields in a version 1 blob"},
		{`{"v":2,"boot":"b1"}`, "all or none"},
		{`{"v":2,"saved":5}`, "all or none"},
		{`{"v":2,"up":5}`, "all or none"},
		{`{"v":2,"boot":"b1","saved":5,"up":-1}`, "up -1"},
		{`{"v":2,"boot":"b1","saved":5,"up":9223372036854775807}`, "up 9223372036854775807 outside"},
		{`{"v":1,"actions":{"observe":[1]}}`, `unknown step "observe"`},
		{`{"v":1,"actions":{"reset-all":[1]}}`, `unknown step "reset-all"`},
		{`{"v":1,"actions":{"reboot":[0]}}`, "time 0 for reboot"},
		{`{"v":1,"rounds":-1}`, "rounds -1"},
		{`{"v":1,"parked_until":-5}`, "negative time"},
		{`{"v":1,"extra":true}`, "unknown field"},
		{`{"v":1} {}`, "data after the object"},
		{`[1]`, "bad saved state"},
		{``, "bad saved state"},
	} {
		if _, err := decodeSaved([]byte(c.in), at); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.in, err, c.want)
		}
	}
	// A record from the future (the clock was set back) counts as made
	// now; one older than a day is dropped.
	s, err := decodeSaved([]byte(`{"v":1,"actions":{"reboot":[1740000600000, 1739900000000, 1739990000000]}}`), at)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.hist[stepReboot]; len(got) != 2 || !got[0].At.Equal(now.Add(-10000*time.Second)) || !got[1].At.Equal(now) {
		t.Errorf("records %v", got)
	}
}

// FuzzDecodeSaved: no blob crashes the decoder, and what it accepts
// encodes to a blob that decodes to the same state.
func FuzzDecodeSaved(f *testing.F) {
	f.Add([]byte(`{"v":1,"actions":{"reboot":[1740000000000],"bsc-reset":[1739999000000,1739999500000]},"rounds":2,"next_round":1740001000000,"parked_until":1740003000000}`))
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"v":1,"actions":{"reattach":[9223372036854775807,-1]}}`))
	f.Add([]byte(`{"v":2,"actions":{"reboot":[1740000000000]},"next_round":1740001000000,"boot":"fuzz-boot","saved":1739990000000,"up":3000000}`))
	f.Add([]byte(`{"v":2,"actions":{"reboot":[1740000000000]},"boot":"other-boot","saved":1,"up":9}`))
	at := stampAt(time.UnixMilli(1_740_000_000_000), "fuzz-boot", time.Hour)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeSaved(b, at)
		if err != nil {
			return
		}
		enc, err := encodeSaved(s, at)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeSaved(enc, at)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", enc, err)
		}
		enc2, _ := encodeSaved(again, at)
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("not stable:\n%s\n%s", enc, enc2)
		}
	})
}
