package config

import (
	"strings"
	"testing"
	"time"
)

func TestSupervisorProblems(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"[supervisor]\npoll = \"100ms\"\n", "line 2: supervisor.poll: 100ms: want 1s to 1h0m0s"},
		{"[supervisor]\nat_timeout = \"15s\"\n", "line 2: supervisor.at_timeout: 15s: want more than 0 and less than poll (15s)"},
		{"[supervisor]\nat_timeout = \"0s\"\n", "supervisor.at_timeout: 0s"},
		{"[supervisor]\nunresponsive_after = \"5s\"\n", "line 2: supervisor.unresponsive_after: 5s: want 15s to 24h0m0s (at least poll"},
		{"[supervisor]\nmodem_timeout = \"0s\"\n", "supervisor.modem_timeout: 0s"},
		{"[supervisor]\nrsrp_min_dbm = -20\n", "line 2: supervisor.rsrp_min_dbm: -20: want -140 to -44"},
		{"[supervisor]\nsinr_min_db = 40.0\n", "supervisor.sinr_min_db: 40: want -20 to 30"},
		{"[supervisor]\nrssi_min_dbm = -120\n", "supervisor.rssi_min_dbm: -120"},
		{"[supervisor]\nsignal_hysteresis_db = -1.0\n", "supervisor.signal_hysteresis_db: -1"},
		{"[supervisor]\nbad_signal_for = \"1s\"\n", "supervisor.bad_signal_for: 1s"},
		{"[supervisor]\nobserve = \"10s\"\n", "line 2: supervisor.observe: 10s: want 15s to 24h0m0s (at least poll, so an outage is seen twice"},
		{"[supervisor]\nbackoff_min = \"0s\"\n", "supervisor.backoff_min: 0s"},
		{"[supervisor]\nbackoff_max = \"1m\"\n", "supervisor.backoff_max: 1m0s: want 5m0s to 168h0m0s (at least backoff_min)"},
		{"[supervisor]\npark = \"1m\"\n", "supervisor.park: 1m0s"},
		{"[supervisor]\nquota_recheck = \"10s\"\n", "supervisor.quota_recheck: 10s: want 1m0s to 168h0m0s (each check is an API call)"},
		{"[supervisor]\nprobe_host = \"example.com\"\n", "line 2: supervisor.probe_host: \"example.com\": want host:port"},
		{"[supervisor]\nprobe_host = \"example.com:https\"\n", "supervisor.probe_host"},
		{"[supervisor]\nprobe_host = \":443\"\n", "supervisor.probe_host"},
		{"[supervisor]\nprobe_timeout = \"2m\"\n", "supervisor.probe_timeout: 2m0s"},
		{"[supervisor]\npoll = \"soon\"\n", "supervisor.poll"},
		{"[supervisor.steps.reattach]\nper_hour = -1\n", "line 2: supervisor.steps.reattach.per_hour: -1: must not be negative"},
		{"[supervisor.steps.reboot]\nper_day = -1\n", "line 2: supervisor.steps.reboot.per_day: -1: must not be negative"},
		{"[supervisor.steps.cfun-reset]\nper_hour = 61\nper_day = 100\n", "line 2: supervisor.steps.cfun-reset.per_hour: 61: at most 60"},
		{"[supervisor.steps.bsc-reset]\nper_hour = 5\nper_day = 3\n", "line 2: supervisor.steps.bsc-reset.per_hour: 5 exceeds per_day (3)"},
		{"[supervisor.steps.quota]\nwait = \"48h\"\n", "line 2: supervisor.steps.quota.wait: 48h0m0s"},
		{"[supervisor.steps.power-cycle]\nmin_interval = \"-1s\"\n", "line 2: supervisor.steps.power-cycle.min_interval: -1s"},
		{"[supervisor.steps.power_cycle]\nwait = \"1m\"\n", "supervisor.steps.power_cycle: unknown key"},
		{"[supervisor.steps.reboot]\nretries = 3\n", "line 2: supervisor.steps.reboot.retries: unknown key"},
	} {
		_, err := Parse([]byte(c.in), "gw.toml")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q:\n got %v\nwant %q", c.in, err, c.want)
		}
	}
}

// A partial step table keeps the defaults of the keys it leaves out, and
// 0 is accepted as "never take this step".
func TestSupervisorPartialStep(t *testing.T) {
	in := "[supervisor]\nprobe_host = \"[2606:4700::1111]:443\"\n[supervisor.steps.bsc-reset]\nper_day = 0\nper_hour = 0\n"
	cfg, err := Parse([]byte(in), "gw.toml")
	if err != nil {
		t.Fatal(err)
	}
	got, def := cfg.Supervisor.Steps.BSCReset, Default().Supervisor.Steps.BSCReset
	if got.PerDay != 0 || got.PerHour != 0 || got.Wait != def.Wait || got.MinInterval.Duration != 30*time.Minute {
		t.Errorf("bsc-reset %+v, want the default wait and interval with no budget", got)
	}
	if cfg.Supervisor.ProbeHost != "[2606:4700::1111]:443" {
		t.Errorf("probe_host %q", cfg.Supervisor.ProbeHost)
	}
}

func TestSupervisorValidate(t *testing.T) {
	s := Default().Supervisor
	if err := s.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	s.Poll.Duration = 0
	s.Steps.Reboot.PerHour = 9
	err := s.Validate()
	for _, want := range []string{"supervisor.poll: 0s", "supervisor.steps.reboot.per_hour: 9 exceeds per_day (4)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
	names := ""
	for _, st := range s.Steps.Named() {
		names += st.Name + " "
	}
	if names != "redial reattach cfun-reset quota bsc-reset reboot power-cycle " {
		t.Errorf("step order %q", names)
	}
}
