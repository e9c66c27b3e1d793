package agent

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"cellagent/agent/atsession"
	"cellagent/agent/config"
	"cellagent/agent/supervisor"
	"cellagent/modem/bg96emu"
	"cellagent/modem/bg96emu/bg96emutest"
	"cellagent/transport/mqtt/mqtttest"
)

// TestLife combines the session's phase with the supervisor's view: the
// session speaks until there is an outage the ladder acts on; then the
// ladder's step, its park, the quota hold and a configuration fault win.
func TestLife(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC)
	t1, t2, t3 := t0.Add(time.Minute), t0.Add(2*time.Minute), t0.Add(3*time.Minute)
	sess := func(p atsession.Phase) atsession.Snapshot { return atsession.Snapshot{Phase: p, Since: t0} }
	sup := func(st supervisor.State, step string, parked bool, actions ...supervisor.Action) *supervisor.Snapshot {
		return &supervisor.Snapshot{State: st, Step: step, Parked: parked, Since: t1, LastActions: actions}
	}
	for _, c := range []struct {
		name string
		s    atsession.Snapshot
		sup  *supervisor.Snapshot
		want Life
	}{
		{"not started, no supervisor yet", sess(atsession.Closed), nil, Life{"closed", "", t0}},
		{"opening", sess(atsession.Opening), sup(supervisor.StateUnknown, "", false), Life{"opening", "", t0}},
		{"booting", sess(atsession.Booting), sup(supervisor.StateUnknown, "", false), Life{"booting", "", t0}},
		{"initialising", sess(atsession.Initialising), nil, Life{"initialising", "", t0}},
		{"up, not judged yet", sess(atsession.Up), sup(supervisor.StateUnknown, "", false), Life{"up", "", t0}},
		{"up and healthy", sess(atsession.Up), sup(supervisor.StateHealthy, "", false), Life{"up", "", t0}},
		{"up, degraded without an outage", sess(atsession.Up), sup(supervisor.StateDegraded, "", false), Life{"up", "", t0}},
		{"an outage in its grace", sess(atsession.Up), sup(supervisor.StateDown, supervisor.StepObserve, false), Life{"observing", "", t1}},
		{"the modem gone before any step: the session says why", sess(atsession.Retrying), sup(supervisor.StateUnresponsive, supervisor.StepObserve, false), Life{"retrying", "", t0}},
		{"a step taken, dated by the step", sess(atsession.Up),
			sup(supervisor.StateDown, supervisor.StepCFUNReset, false,
				supervisor.Action{Step: supervisor.StepReattach, At: t2}, supervisor.Action{Step: supervisor.StepCFUNReset, At: t3}),
			Life{"recovering", "cfun-reset", t3}},
		{"a power-cycle while the modem boots", sess(atsession.Booting),
			sup(supervisor.StateUnresponsive, supervisor.StepPowerCycle, false, supervisor.Action{Step: supervisor.StepPowerCycle, At: t2}),
			Life{"recovering", "power-cycle", t2}},
		{"a step with no action recorded: the state's since", sess(atsession.Up), sup(supervisor.StateDown, supervisor.StepRedial, false),
			Life{"recovering", "redial", t1}},
		{"parked", sess(atsession.Retrying), sup(supervisor.StateUnresponsive, supervisor.StepPowerCycle, true), Life{"parked", "power-cycle", t1}},
		{"quota used up", sess(atsession.Up), sup(supervisor.StateQuota, supervisor.StepQuota, false), Life{"quota-hold", "", t1}},
		{"configuration refused", sess(atsession.Up), sup(supervisor.StateConfigFault, "", false), Life{"config-fault", "", t1}},
	} {
		if got := life(c.s, c.sup); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestReadiness: ready at the first session up, or when the timeout
// passes whatever the phase; not before.
func TestReadiness(t *testing.T) {
	for _, c := range []struct {
		phase    atsession.Phase
		timedOut bool
		want     string
	}{
		{atsession.Opening, false, ""},
		{atsession.Booting, false, ""},
		{atsession.Initialising, false, ""},
		{atsession.Retrying, false, ""},
		{atsession.Up, false, "modem initialised"},
		{atsession.Up, true, "modem initialised"},
		{atsession.Booting, true, "modem not up yet (booting); recovering"},
		{atsession.Retrying, true, "modem not up yet (retrying); recovering"},
	} {
		status, ready := readiness(atsession.Snapshot{Phase: c.phase}, c.timedOut)
		if status != c.want || ready != (c.want != "") {
			t.Errorf("%s, timed out %v: %q %v, want %q", c.phase, c.timedOut, status, ready, c.want)
		}
	}
}

// The status file follows the modem's life: against a simulated modem
// that is booting when the agent starts, it shows booting, then up, with
// the session's phase in link.
func TestStatusShowsBootingThenUp(t *testing.T) {
	m := bg96emutest.Start(t, bg96emu.Config{BootDelay: 1500 * time.Millisecond, RegisterDelay: 50 * time.Millisecond})
	dir := t.TempDir()
	tty := filepath.Join(dir, "ttyBG96")
	if err := m.Link(tty); err != nil {
		t.Fatal(err)
	}
	b := mqtttest.Start(t, mqtttest.Options{})
	cfg := config.Default()
	cfg.Modem.Port, cfg.Device.ID = tty, "gw-life"
	cfg.State.Dir = filepath.Join(dir, "state")
	cfg.MQTT.Broker, cfg.MQTT.AllowPlaintext = b.URL(), true
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	m.Reboot() // silent for BootDelay, then RDY
	go func() { done <- Run(ctx, Options{Config: cfg, RuntimeDir: dir}) }()

	var phases []string
	var last Status
	eventually(t, "life up in status.json", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, StatusFile))
		if err != nil {
			return false
		}
		var st Status
		if err := json.Unmarshal(b, &st); err != nil || st.Life == nil {
			return false // written while read, or not yet
		}
		if len(phases) == 0 || phases[len(phases)-1] != st.Life.Phase {
			phases = append(phases, st.Life.Phase)
		}
		last = st
		return st.Life.Phase == "up"
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("phases %v", phases)
	i := slices.Index(phases, "booting")
	if i < 0 || i > slices.Index(phases, "up") {
		t.Errorf("life phases %v: want booting, then up", phases)
	}
	if l := last.Link; l.Phase != "up" || !l.Up || l.PhaseSince.IsZero() || l.Error != "" {
		t.Errorf("link when up: %+v", l)
	}
	if !last.Life.Since.Equal(last.Link.PhaseSince) {
		t.Errorf("life since %s, the session's phase since %s", last.Life.Since, last.Link.PhaseSince)
	}
}
