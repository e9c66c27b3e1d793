package supervisor

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"cellagent/agent/event"
	"cellagent/modem/bg96emu"
	"cellagent/transport/bsc/bscemu"
)

// stepsAt lists "step@offset" for every step taken.
func stepsAt(evs []event.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Attr("step")+"@"+ev.Time.Sub(t0).String())
	}
	return out
}

// A registration lost for a minute heals within the observe grace: the
// supervisor reports it and takes no step.
func TestShortOutageHealsDuringObserve(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{bsc: true})
	s := r.newSupervisor(r.cfg)
	r.at(time.Minute, lose(r.m))
	r.at(2*time.Minute, regain(r.m))
	r.run(s, 10*time.Minute, 20*time.Second)

	if got := r.events.taken(); len(got) != 0 {
		t.Errorf("steps taken: %v\n%s", stepsAt(got), r.events.dump())
	}
	if got, want := r.events.states(), []string{"healthy", "degraded", "down", "healthy"}; !slices.Equal(got, want) {
		t.Errorf("states %v, want %v\n%s", got, want, r.events.dump())
	}
	var healed bool
	for _, ev := range r.events.all() {
		healed = healed || ev.Type == event.Recovery && ev.Attr("outcome") == "recovered" && ev.Attr("steps") == "0"
	}
	if !healed {
		t.Errorf("no event says the outage healed without action\n%s", r.events.dump())
	}
	snap := s.Snapshot()
	if snap.State != StateHealthy || snap.ActionsToday != 0 || snap.Step != "" {
		t.Errorf("snapshot %+v", snap)
	}
	if st, _ := r.srv.SIM(r.iccid); st.ResetCount != 0 {
		t.Errorf("%d network resets", st.ResetCount)
	}
}

// A registration that stays lost climbs reattach, cfun-reset, quota and
// bsc-reset in order, each after the previous step's wait.
func TestLostRegistrationClimbs(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{bsc: true})
	s := r.newSupervisor(r.cfg)
	r.at(time.Minute, lose(r.m))
	// The outage is first seen at 1m; observe 3m, reattach 2m, cfun-reset
	// 2m, quota 0: the network reset goes out at 8m, the reboot would at 13m.
	r.run(s, 12*time.Minute, 20*time.Second)

	want := []string{"reattach@4m0s", "cfun-reset@6m0s", "quota@8m0s", "bsc-reset@8m0s"}
	if got := stepsAt(r.events.taken()); !slices.Equal(got, want) {
		t.Fatalf("steps %v, want %v\n%s", got, want, r.events.dump())
	}
	for _, ev := range r.events.taken() {
		if ev.Attr("outcome") != resultDone {
			t.Errorf("%s: outcome %q: %s", ev.Attr("step"), ev.Attr("outcome"), ev.Msg)
		}
	}
	if st, _ := r.srv.SIM(r.iccid); st.ResetCount != 1 {
		t.Errorf("%d network resets, want 1", st.ResetCount)
	}
	snap := s.Snapshot()
	if snap.State != StateDown || snap.Step != StepBSCReset || !snap.NextActionAt.Equal(t0.Add(13*time.Minute)) {
		t.Errorf("snapshot: state %s, step %q, next %q at %s", snap.State, snap.Step, snap.NextAction, snap.NextActionAt)
	}
	for _, b := range snap.Budgets {
		if b.Step == StepBSCReset && (b.HourLeft != 1 || b.DayLeft != 2 || !b.NextAllowed.Equal(t0.Add(38*time.Minute))) {
			t.Errorf("bsc-reset budget %+v: want 1 left this hour, 2 today, next at 38m (30m min interval)", b)
		}
	}
	if n := s.ActionsToday(); n != 4 {
		t.Errorf("ActionsToday %d, want 4", n)
	}
}

// An exhausted data quota stops the climb before the network reset and is
// reported; it is rechecked on its slow timer, and no reset follows.
func TestQuotaExhaustedStopsTheLadder(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{bsc: true})
	if err := r.srv.UseData(r.iccid, 500<<20); err != nil {
		t.Fatal(err)
	}
	s := r.newSupervisor(r.cfg)
	r.at(time.Minute, lose(r.m))
	r.run(s, 3*time.Hour, 20*time.Second)

	want := []string{"reattach@4m0s", "cfun-reset@6m0s", "quota@8m0s", "quota@1h8m0s", "quota@2h8m0s"}
	if got := stepsAt(r.events.taken()); !slices.Equal(got, want) {
		t.Fatalf("steps %v, want %v\n%s", got, want, r.events.dump())
	}
	if st, _ := r.srv.SIM(r.iccid); st.ResetCount != 0 {
		t.Errorf("%d network resets despite an empty bundle", st.ResetCount)
	}
	if got := r.events.states(); !slices.Contains(got, string(StateQuota)) {
		t.Errorf("states %v: quota-exhausted never reported", got)
	}
	var quotaEv *event.Event
	for _, ev := range r.events.all() {
		if ev.Type == event.Quota {
			quotaEv = &ev
			break
		}
	}
	if quotaEv == nil || quotaEv.Level != "error" || quotaEv.Attr("data_status") != "EXHAUSTED" || quotaEv.Attr("data_left") != "0" {
		t.Errorf("quota event %+v", quotaEv)
	}
	if snap := s.Snapshot(); snap.State != StateQuota || snap.NextAction != "recheck the quota" || !snap.NextActionAt.Equal(t0.Add(3*time.Hour+8*time.Minute)) {
		t.Errorf("snapshot: state %s, next %q at %s", snap.State, snap.NextAction, snap.NextActionAt)
	}
}

// A 429 from the operator API delays the network reset by its
// Retry-After, and the refused attempt costs no budget.
func TestThrottledResetWaitsForRetryAfter(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{bsc: true})
	cfg := r.cfg
	cfg.Steps.Quota.PerHour, cfg.Steps.Quota.PerDay = 0, 0 // so that the reset is the first API call
	s := r.newSupervisor(cfg)
	r.srv.InjectFault(bscemu.Fault{Kind: bscemu.FaultThrottle, RetryAfter: "600"})
	r.at(time.Minute, lose(r.m))
	r.run(s, 20*time.Minute, 20*time.Second)

	want := []string{"reattach@4m0s", "cfun-reset@6m0s", "bsc-reset@8m0s", "bsc-reset@18m0s"}
	if got := stepsAt(r.events.taken()); !slices.Equal(got, want) {
		t.Fatalf("steps %v, want %v\n%s", got, want, r.events.dump())
	}
	first, second := r.events.taken()[2], r.events.taken()[3]
	if first.Attr("outcome") != resultThrottled || first.Attr("retry_after") != "10m0s" || first.Attr("budget_day_left") != "3" {
		t.Errorf("throttled attempt: %v", first.Attrs)
	}
	if second.Attr("outcome") != resultDone || second.Attr("attempt") != "1" || second.Attr("budget_day_left") != "2" {
		t.Errorf("retried attempt: %v", second.Attrs)
	}
	if st, _ := r.srv.SIM(r.iccid); st.ResetCount != 1 {
		t.Errorf("%d network resets, want 1", st.ResetCount)
	}
}

// A modem that stops answering is rebooted; when AT+CFUN=1,1 gets no
// answer either, it is power-cycled through the fake GPIO pins with the
// BG96's press lengths, and comes back.
func TestUnresponsiveModemIsRebootedThenPowerCycled(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{power: true})
	s := r.newSupervisor(r.cfg)
	r.at(time.Minute, func() { r.m.Silence(true) })
	r.run(s, 15*time.Minute, 30*time.Second)

	got := r.events.taken()
	// Silent from 1m; unresponsive once 3 probes failed over 1m (at 2m);
	// observed from 1m for 3m.
	if steps := stepsAt(got); !slices.Equal(steps, []string{"reboot@4m0s", "power-cycle@4m0s"}) {
		t.Fatalf("steps %v\n%s", steps, r.events.dump())
	}
	if got[0].Attr("outcome") != resultFailed || got[1].Attr("outcome") != resultDone {
		t.Errorf("outcomes %q, %q\n%s", got[0].Attr("outcome"), got[1].Attr("outcome"), r.events.dump())
	}
	if !strings.Contains(got[1].Msg, "PWRKEY off: the port vanished") || !strings.Contains(got[1].Msg, "came back") {
		t.Errorf("power-cycle: %s", got[1].Msg)
	}
	pk := r.pins.pwrKey.pulses()
	if len(pk) != 2 || pk[0] < 650*time.Millisecond || pk[0] > 1500*time.Millisecond || pk[1] < 500*time.Millisecond || pk[1] >= 650*time.Millisecond {
		t.Errorf("PWRKEY pulses %v: want a power-off press of 650-1500 ms, then a power-on press of 500-650 ms", pk)
	}
	if rn, sp := r.pins.resetN.pulses(), r.pins.supply.pulses(); len(rn) != 0 || len(sp) != 0 {
		t.Errorf("RESET_N pulses %v, supply cuts %v: the graceful power-off worked, nothing harder was due", rn, sp)
	}
	states := r.events.states()
	if !slices.Contains(states, string(StateUnresponsive)) || states[len(states)-1] != string(StateHealthy) {
		t.Errorf("states %v", states)
	}
	if snap := s.Snapshot(); snap.State != StateHealthy || snap.Figures["session"] == 1 {
		t.Errorf("snapshot: %s on session %s", snap.State, snap.Figures["session"])
	}
}

// A hung modem that ignores PWRKEY keeps its port; the power-cycle goes
// on to RESET_N, and never needs to cut the supply.
func TestHungModemGetsResetN(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{power: true})
	r.cfg.ModemTimeout.Duration = time.Second
	s := r.newSupervisor(r.cfg)
	r.at(time.Minute, func() {
		r.m.Silence(true)
		r.pins.mu.Lock()
		r.pins.hung = true
		r.pins.mu.Unlock()
	})
	r.run(s, 10*time.Minute, 30*time.Second)

	got := r.events.taken()
	if steps := stepsAt(got); !slices.Equal(steps, []string{"reboot@4m0s", "power-cycle@4m0s"}) || got[1].Attr("outcome") != resultDone {
		t.Fatalf("steps %v\n%s", steps, r.events.dump())
	}
	for _, want := range []string{"PWRKEY off: the port is still there", "RESET_N pulsed; the modem came back"} {
		if !strings.Contains(got[1].Msg, want) {
			t.Errorf("power-cycle %q lacks %q", got[1].Msg, want)
		}
	}
	if pk, rn, sp := r.pins.pwrKey.pulses(), r.pins.resetN.pulses(), r.pins.supply.pulses(); len(pk) != 1 || len(rn) != 1 || rn[0] < 150*time.Millisecond || rn[0] > 460*time.Millisecond || len(sp) != 0 {
		t.Errorf("PWRKEY %v, RESET_N %v, supply %v: want one power-off press, one 150-460 ms reset pulse, no cut", pk, rn, sp)
	}
	if snap := s.Snapshot(); snap.State != StateHealthy {
		t.Errorf("state %s", snap.State)
	}
}

// A modem that lost power and its port (a brown-out) leaves the link
// without a session for modem_timeout: modem-unresponsive. The reboot
// needs AT and is skipped; the power-cycle, with no port to be graceful
// with, presses PWRKEY for power-on only.
func TestModemGoneIsPoweredOn(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{power: true})
	r.cfg.ModemTimeout.Duration = time.Second
	r.cfg.Poll.Duration = 30 * time.Second
	r.cfg.UnresponsiveAfter.Duration = 30 * time.Second
	r.cfg.Observe.Duration = 30 * time.Second
	s := r.newSupervisor(r.cfg)
	r.at(time.Minute, func() {
		r.pins.mu.Lock()
		r.pins.off = true
		r.pins.mu.Unlock()
		r.m.PowerOff()
		_ = r.m.HangUp(100 * time.Millisecond)
	})
	r.run(s, 3*time.Minute, 30*time.Second)

	var got []string
	for _, ev := range r.events.all() {
		if ev.Type == event.Recovery {
			got = append(got, ev.Attr("step")+" "+ev.Attr("outcome"))
		}
	}
	want := []string{"observe watching", "reboot skipped", "power-cycle done", "power-cycle recovered"}
	if !slices.Equal(got, want) {
		t.Fatalf("recovery events %v, want %v\n%s", got, want, r.events.dump())
	}
	if pk := r.pins.pwrKey.pulses(); len(pk) != 1 || pk[0] < 500*time.Millisecond || pk[0] >= 650*time.Millisecond {
		t.Errorf("PWRKEY %v: want one power-on press", pk)
	}
	if states := r.events.states(); !slices.Contains(states, string(StateUnresponsive)) || states[len(states)-1] != string(StateHealthy) {
		t.Errorf("states %v", states)
	}
}

// The USB port vanishing for a moment is a degraded link until the link
// reopens it, not an outage: no step is taken.
func TestPortVanishesAndReturns(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{})
	s := r.newSupervisor(r.cfg)
	r.at(time.Minute, func() { _ = r.m.HangUp(300 * time.Millisecond) })
	r.run(s, 5*time.Minute, 20*time.Second)

	if got := r.events.taken(); len(got) != 0 {
		t.Errorf("steps taken: %v\n%s", stepsAt(got), r.events.dump())
	}
	if got, want := r.events.states(), []string{"healthy", "degraded", "healthy"}; !slices.Equal(got, want) {
		t.Errorf("states %v, want %v\n%s", got, want, r.events.dump())
	}
	cur, err := r.link.Current()
	if err != nil || cur.Seq < 2 {
		t.Fatalf("link: %v, %v", cur, err)
	}
	if snap := s.Snapshot(); snap.State != StateHealthy || snap.Figures["session"] != 2 {
		t.Errorf("snapshot: %s on session %s", snap.State, snap.Figures["session"])
	}
}

// A supervisor that starts while the link is still opening the port
// waits for it quietly instead of reporting an outage at every start.
func TestStartsBeforeTheSession(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{})
	if err := r.m.HangUp(200 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	s := r.newSupervisor(r.cfg)
	r.run(s, time.Minute, 20*time.Second)
	if got := r.events.states(); !slices.Equal(got, []string{"healthy"}) {
		t.Errorf("states %v\n%s", got, r.events.dump())
	}
	if snap := s.Snapshot(); snap.Figures["session"] != 2 {
		t.Errorf("figures %v", snap.Figures)
	}
}

// testdata/scenarios/outage.scn, the bench demo of the ladder, played
// against the supervisor in simulated time: its registration and signal
// changes are applied at the times the file gives them, and the ladder
// climbs as its comment says (here without [bsc] and [power], as with a
// plain `cellbench modem`).
func TestOutageScenarioClimbs(t *testing.T) {
	t.Parallel()
	f, err := os.Open("../../testdata/scenarios/outage.scn")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := bg96emu.ParseScenario(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, rigOpts{})
	home := bg96emu.Registration{Stat: bg96emu.Home, Area: "1A2B", Cell: "01A2B3C", AcT: bg96emu.ActEMTC}
	signal := func(rssi, rsrp, sinr, rsrq int) func() {
		return func() {
			_ = r.m.SetSignal(bg96emu.Signal{Act: "CAT-M1", RSSI: rssi, RSRP: rsrp, SINR: sinr, RSRQ: rsrq})
		}
	}
	actions := map[string]func(){
		"register domain=all stat=home tac=1A2B ci=01A2B3C act=CAT-M1": func() { _ = r.m.SetRegistration(bg96emu.AllDomains, home) },
		"register domain=all stat=searching":                           lose(r.m),
		"signal act=NOSERVICE":                                         func() { _ = r.m.SetSignal(bg96emu.NoService) },
		"signal act=CAT-M1 rssi=-65 rsrp=-95 sinr=12 rsrq=-11":         signal(-65, -95, 12, -11),
		"signal act=CAT-M1 rssi=-71 rsrp=-101 sinr=6 rsrq=-12":         signal(-71, -101, 6, -12),
		"signal act=CAT-M1 rssi=-97 rsrp=-126 sinr=-7 rsrq=-19":        signal(-97, -126, -7, -19),
		"signal act=CAT-M1 rssi=-66 rsrp=-96 sinr=11 rsrq=-11":         signal(-66, -96, 11, -11),
	}
	for _, ev := range sc.Events {
		act, ok := actions[ev.Text]
		if !ok || ev.Every != 0 || sc.Loop != 0 {
			t.Fatalf("outage.scn line %d: %q is not an action this test plays", ev.Line, ev.Text)
		}
		r.at(ev.At, act)
	}
	s := r.newSupervisor(r.cfg)
	r.run(s, 45*time.Minute, 30*time.Second)

	// The file's changes reach the supervisor by URC, in real time, so
	// when a poll first sees one may vary by a poll interval; the ladder's
	// own times follow from that.
	type step struct {
		at            time.Duration
		step, outcome string
	}
	want := []step{
		{time.Minute, StepObserve, "watching"},
		{4 * time.Minute, StepRedial, resultSkipped}, // no bearer of the agent's
		{4 * time.Minute, StepReattach, resultDone},
		{6 * time.Minute, StepCFUNReset, resultDone},
		{8 * time.Minute, StepQuota, resultSkipped},
		{8 * time.Minute, StepBSCReset, resultSkipped},
		{8 * time.Minute, StepReboot, resultDone},
		{11 * time.Minute, StepPowerCycle, resultSkipped},
		{11 * time.Minute, "", ""}, // the alert: parked at the top
		{17 * time.Minute, StepReboot, "recovered"},
		{25 * time.Minute, StepObserve, "watching"},
		{26 * time.Minute, StepObserve, "recovered"},
	}
	var got []step
	for _, ev := range r.events.all() {
		if ev.Type == event.Recovery || ev.Type == EventAlert {
			got = append(got, step{ev.Time.Sub(t0), ev.Attr("step"), ev.Attr("outcome")})
		}
	}
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		g, w := got[i], want[i]
		ok = g.step == w.step && g.outcome == w.outcome && g.at >= w.at && g.at <= w.at+r.cfg.Poll.Duration+time.Second
	}
	if !ok {
		t.Errorf("ladder events %v\nwant about %v\n%s", got, want, r.events.dump())
	}
	states := strings.Join(r.events.states(), " ")
	if states != "healthy degraded down healthy degraded down healthy degraded healthy" {
		t.Errorf("states %s\n%s", states, r.events.dump())
	}
}
