package supervisor

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// dataBearer stands in for agent/bearer (whose ppp mode needs a kernel
// with PPP): its interface state is set by the test, and it counts the
// redials and quota blocks it is asked for.
type dataBearer struct {
	mu      sync.Mutex
	up      bool
	redials int
	quota   []bool
	fault   string
}

func (b *dataBearer) Evidence() (*bool, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fault != "" {
		// As agent/bearer: a faulted bearer gives no evidence.
		return nil, ""
	}
	up := b.up
	if up {
		return &up, ""
	}
	return &up, "ppp0 does not exist"
}

func (b *dataBearer) Dials() bool { return true }

func (b *dataBearer) Redial(string) error {
	b.mu.Lock()
	b.redials++
	b.mu.Unlock()
	return nil
}

func (b *dataBearer) SetQuota(exhausted bool) {
	b.mu.Lock()
	b.quota = append(b.quota, exhausted)
	b.mu.Unlock()
}

func (b *dataBearer) set(up bool, fault string) func() {
	return func() {
		b.mu.Lock()
		b.up, b.fault = up, fault
		b.mu.Unlock()
	}
}

func (b *dataBearer) configFault() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fault
}

// A bearer whose interface is down while the modem stays registered: the
// ladder's first step is the cheap redial, and it keeps to its budget
// over a day of outage.
func TestRedialIsTheFirstStep(t *testing.T) {
	t.Parallel()
	// Instant waits and a poll a minute: the simulated modem's own delays
	// play no part in a bearer that is down or refused, and a day of
	// polls at 15 s is only more AT traffic.
	r := newRig(t, rigOpts{instant: true})
	r.cfg.Poll.Duration = time.Minute
	b := &dataBearer{up: true}
	d := r.deps()
	d.Bearer = b
	s, err := New(r.cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	r.at(time.Minute, b.set(false, ""))
	r.run(s, 24*time.Hour, 90*time.Second)
	taken := r.events.taken()
	if len(taken) == 0 || taken[0].Attrs["step"] != StepRedial || taken[0].Attrs["outcome"] != resultDone {
		t.Fatalf("first step %v\n%s", taken, r.events.dump())
	}
	if b.redials == 0 || b.redials > r.cfg.Steps.Redial.PerDay {
		t.Errorf("%d redials in a day (budget %d)", b.redials, r.cfg.Steps.Redial.PerDay)
	}
	t.Logf("a day with the bearer down: %d redials (budget %d/day), %d steps in all", b.redials, r.cfg.Steps.Redial.PerDay, len(taken))
}

// A configuration fault (a wrong APN the network refuses): one alert, no
// step at all over a simulated day, and the ladder back to normal once
// the fault is gone (the operator fixed the APN and reloaded).
func TestConfigFaultStopsTheLadder(t *testing.T) {
	t.Parallel()
	// Instant waits and a poll a minute: the simulated modem's own delays
	// play no part in a bearer that is down or refused, and a day of
	// polls at 15 s is only more AT traffic.
	r := newRig(t, rigOpts{instant: true})
	r.cfg.Poll.Duration = time.Minute
	b := &dataBearer{up: true}
	d := r.deps()
	d.Bearer, d.ConfigFault = b, b.configFault
	s, err := New(r.cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	r.at(time.Minute, b.set(false, "dial: NO CARRIER (Missing or unknown APN)"))
	r.at(24*time.Hour, b.set(true, ""))
	r.run(s, 25*time.Hour, 90*time.Second)
	alerts := 0
	for _, ev := range r.events.all() {
		if ev.Type == EventAlert {
			alerts++
		}
	}
	if n := len(r.events.taken()); n != 0 || alerts != 1 || b.redials != 0 {
		t.Errorf("%d steps, %d alerts, %d redials in a day of config fault\n%s", n, alerts, b.redials, r.events.dump())
	}
	states := r.events.states()
	if len(states) < 2 || states[len(states)-2] != string(StateConfigFault) || states[len(states)-1] != string(StateHealthy) {
		t.Errorf("states %v", states)
	}
	if snap := s.Snapshot(); snap.State != StateHealthy {
		t.Errorf("after the fix: %s %s", snap.State, snap.Reason)
	}
}

// An exhausted data quota stops the bearer's dialling: the quota step
// tells it once, and it is told again when connectivity is back.
func TestQuotaBlocksTheBearer(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOpts{bsc: true})
	if err := r.srv.UseData(r.iccid, 500<<20); err != nil {
		t.Fatal(err)
	}
	b := &dataBearer{up: true}
	d := r.deps()
	d.Bearer = b
	s, err := New(r.cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	r.at(time.Minute, b.set(false, ""))
	// Connectivity back (the bundle topped up elsewhere): the quota is
	// no longer taken as exhausted.
	r.at(90*time.Minute, b.set(true, ""))
	r.run(s, 3*time.Hour, 30*time.Second)
	b.mu.Lock()
	quota := slices.Clone(b.quota)
	b.mu.Unlock()
	if !slices.Equal(quota, []bool{true, false}) {
		t.Errorf("quota told to the bearer: %v\n%s", quota, r.events.dump())
	}
}
