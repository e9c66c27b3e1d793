package bg96_test

import (
	"context"
	"testing"
	"time"

	"cellagent/modem/bg96"
	"cellagent/modem/bg96emu"
)

func TestParseNetworkTime(t *testing.T) {
	utc := func(s string) time.Time { v, _ := time.Parse(time.RFC3339, s); return v }
	for _, c := range []struct {
		line string
		want time.Time
		zone time.Duration
		cclk bool
	}{
		// The BG96 AT manual's example: GMT 03:40:48, zone +8 h.
		{`+QLTS: "2019/01/13,03:40:48+32,0"`, utc("2019-01-13T03:40:48Z"), 8 * time.Hour, false},
		{`+QLTS: "2026/12/04,21:00:00-20,1"`, utc("2026-12-04T21:00:00Z"), -5 * time.Hour, false},
		// AT+CCLK? is local time: 12:40:48 at +8 h is 04:40:48 GMT.
		{`+CCLK: "19/01/13,12:40:48+32"`, utc("2019-01-13T04:40:48Z"), 8 * time.Hour, true},
	} {
		parse := bg96.ParseQLTS
		if c.cclk {
			parse = bg96.ParseCCLK
		}
		nt, err := parse(c.line)
		if err != nil || !nt.Time.Equal(c.want) || nt.Zone != c.zone {
			t.Errorf("%s: %v %v %v", c.line, nt.Time, nt.Zone, err)
		}
	}
	for _, bad := range []string{`+QLTS: ""`, `+QLTS: "2019/13/13,03:40:48+32,0"`, `+QLTS: "2019/01/13,03:40:48+99,0"`, `+CCLK: "19/01/13"`, `+CCLK: "19/01/13,12:40:48"`} {
		if _, err := bg96.ParseQLTS(bad); err == nil {
			if _, err := bg96.ParseCCLK(bad); err == nil {
				t.Errorf("%s parsed", bad)
			}
		}
	}
}

func TestNetworkTimeFromSimulator(t *testing.T) {
	m, a := simSession(t, bg96emu.Config{})
	m.SetNetworkTimeOffset(-3 * time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nt, err := bg96.New(a).NetworkTime(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(nt.Time) - 3*time.Hour; d < -2*time.Second || d > 2*time.Second || nt.Source != "qlts" || nt.Zone != time.Hour {
		t.Errorf("network time %v (%s, zone %s), want 3 h behind", nt.Time, nt.Source, nt.Zone)
	}
	// Without coverage the network has sent nothing, and the modem's
	// free-running clock is not taken for it.
	if err := m.SetRegistration(bg96emu.AllDomains, bg96emu.Registration{Stat: bg96emu.Searching}); err != nil {
		t.Fatal(err)
	}
	m.Reboot()
	w := bg96.Expect(a, "APP RDY")
	if _, err := w.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if nt, err := bg96.New(a).NetworkTime(ctx); err == nil {
		t.Errorf("network time without a network: %+v", nt)
	}
}
