package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// SupervisorConfig tunes the connectivity supervisor: how it judges the
// link, and the budgets and waits of its recovery ladder. No public source
// gives a safe number of modem resets per hour, so these budgets are our
// own policy, set conservatively; the field notes' device OS checks every
// 15 s and resets after 10 minutes unregistered, and the defaults reach
// the first modem reboot after about 12 minutes.
type SupervisorConfig struct {
	// Poll is how often registration, attach state and signal are read.
	Poll Duration `toml:"poll"`
	// ATTimeout bounds each of the supervisor's own queries, so a hung
	// modem is noticed in seconds rather than after the engine's limits.
	ATTimeout Duration `toml:"at_timeout"`
	// UnresponsiveAfter is how long the modem must have failed to answer
	// (three probes at least) before it counts as unresponsive.
	UnresponsiveAfter Duration `toml:"unresponsive_after"`
	// ModemTimeout is how long a vanished port, a rebooting or a
	// power-cycled modem may take to come back as a working session.
	ModemTimeout Duration `toml:"modem_timeout"`

	// Signal below any of these minimums for BadSignalFor makes the state
	// degraded; every reading must climb Hysteresis above its minimum
	// before the signal counts as good again, so a signal hovering at the
	// threshold does not flap.
	RSRPMin      int      `toml:"rsrp_min_dbm"`
	SINRMin      float64  `toml:"sinr_min_db"`
	RSSIMin      int      `toml:"rssi_min_dbm"`
	Hysteresis   float64  `toml:"signal_hysteresis_db"`
	BadSignalFor Duration `toml:"bad_signal_for"`

	// Observe is the grace before the first step: many outages heal alone.
	Observe Duration `toml:"observe"`
	// BackoffMin and BackoffMax bound the pause between two climbs of the
	// ladder; it doubles with every climb until the link has stayed good
	// for BackoffMax.
	BackoffMin Duration `toml:"backoff_min"`
	BackoffMax Duration `toml:"backoff_max"`
	// Park is the pause after a climb that reached the top without success.
	Park Duration `toml:"park"`
	// QuotaRecheck is how often an exhausted quota is asked about again.
	QuotaRecheck Duration `toml:"quota_recheck"`

	// ProbeHost, when set ("host:port"), is connected to over TCP at every
	// poll as a data-path check.
	ProbeHost    string   `toml:"probe_host"`
	ProbeTimeout Duration `toml:"probe_timeout"`
	// DataPathMQTT, without a probe host, takes the broker connection as
	// the data-path check. Off by default: a broker outage would then
	// reset working modems, the complaint the field notes record.
	DataPathMQTT bool `toml:"data_path_mqtt"`

	Steps SupervisorSteps `toml:"steps"`
}

// SupervisorSteps holds the ladder's steps; the table names are the step
// names cmd/recover takes.
type SupervisorSteps struct {
	Redial     StepConfig `toml:"redial"`
	Reattach   StepConfig `toml:"reattach"`
	CFUNReset  StepConfig `toml:"cfun-reset"`
	Quota      StepConfig `toml:"quota"`
	BSCReset   StepConfig `toml:"bsc-reset"`
	Reboot     StepConfig `toml:"reboot"`
	PowerCycle StepConfig `toml:"power-cycle"`
}

// StepConfig is one ladder step's wait and budget. PerHour and PerDay
// count in sliding windows; 0 in either disables the step.
type StepConfig struct {
	// Wait is how long the step is given to take effect before the next.
	Wait        Duration `toml:"wait"`
	PerHour     int      `toml:"per_hour"`
	PerDay      int      `toml:"per_day"`
	MinInterval Duration `toml:"min_interval"`
}

// Named returns the steps with their names, in ladder order.
func (s SupervisorSteps) Named() []NamedStep {
	return []NamedStep{
		{"redial", s.Redial}, {"reattach", s.Reattach}, {"cfun-reset", s.CFUNReset}, {"quota", s.Quota},
		{"bsc-reset", s.BSCReset}, {"reboot", s.Reboot}, {"power-cycle", s.PowerCycle},
	}
}

// NamedStep is a step's configuration with its name.
type NamedStep struct {
	Name string
	StepConfig
}

func defaultSupervisor() SupervisorConfig {
	m := func(n int) Duration { return Duration{time.Duration(n) * time.Minute} }
	return SupervisorConfig{
		Poll:              Duration{15 * time.Second},
		ATTimeout:         Duration{10 * time.Second},
		UnresponsiveAfter: m(1),
		ModemTimeout:      m(3),
		RSRPMin:           -120,
		SINRMin:           -5,
		RSSIMin:           -105,
		Hysteresis:        3,
		BadSignalFor:      m(10),
		Observe:           m(3),
		BackoffMin:        m(5),
		BackoffMax:        m(120),
		Park:              m(360),
		QuotaRecheck:      m(60),
		ProbeTimeout:      Duration{10 * time.Second},
		Steps: SupervisorSteps{
			// Hanging up and dialling again costs one PDP activation: the
			// cheapest step, so it comes first and may run most often.
			Redial:    StepConfig{Wait: m(1), PerHour: 4, PerDay: 24},
			Reattach:  StepConfig{Wait: m(2), PerHour: 3, PerDay: 12},
			CFUNReset: StepConfig{Wait: m(2), PerHour: 2, PerDay: 8},
			Quota:     StepConfig{PerHour: 4, PerDay: 30},
			// The network-side reset is the one the operator sees: at most
			// one per 30 minutes and three a day.
			BSCReset:   StepConfig{Wait: m(5), PerHour: 2, PerDay: 3, MinInterval: m(30)},
			Reboot:     StepConfig{Wait: m(3), PerHour: 2, PerDay: 4, MinInterval: m(10)},
			PowerCycle: StepConfig{Wait: m(5), PerHour: 1, PerDay: 2},
		},
	}
}

// Validate checks the section on its own, for callers that build one
// without Parse (the supervisor checks what it is given).
func (s SupervisorConfig) Validate() error {
	var errs []error
	s.validate(func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	})
	return errors.Join(errs...)
}

func (s SupervisorConfig) validate(bad badFunc) {
	const day = 24 * time.Hour
	within := func(key string, d Duration, lo, hi time.Duration, why string) {
		if d.Duration < lo || d.Duration > hi {
			bad(key, "%s: want %s to %s%s", d.Duration, lo, hi, why)
		}
	}
	within("supervisor.poll", s.Poll, time.Second, time.Hour, "")
	if s.ATTimeout.Duration <= 0 || s.ATTimeout.Duration >= s.Poll.Duration {
		bad("supervisor.at_timeout", "%s: want more than 0 and less than poll (%s)", s.ATTimeout.Duration, s.Poll.Duration)
	}
	within("supervisor.unresponsive_after", s.UnresponsiveAfter, s.Poll.Duration, day, " (at least poll: one failed probe is not an outage)")
	within("supervisor.modem_timeout", s.ModemTimeout, time.Millisecond, time.Hour, "")
	if s.RSRPMin < -140 || s.RSRPMin > -44 {
		bad("supervisor.rsrp_min_dbm", "%d: want -140 to -44", s.RSRPMin)
	}
	if s.SINRMin < -20 || s.SINRMin > 30 {
		bad("supervisor.sinr_min_db", "%g: want -20 to 30", s.SINRMin)
	}
	if s.RSSIMin < -113 || s.RSSIMin > -51 {
		bad("supervisor.rssi_min_dbm", "%d: want -113 to -51", s.RSSIMin)
	}
	if s.Hysteresis < 0 || s.Hysteresis > 20 {
		bad("supervisor.signal_hysteresis_db", "%g: want 0 to 20", s.Hysteresis)
	}
	within("supervisor.bad_signal_for", s.BadSignalFor, s.Poll.Duration, day, " (at least poll)")
	within("supervisor.observe", s.Observe, s.Poll.Duration, day, " (at least poll, so an outage is seen twice before anything is done)")
	within("supervisor.backoff_min", s.BackoffMin, time.Second, day, "")
	within("supervisor.backoff_max", s.BackoffMax, s.BackoffMin.Duration, 7*day, " (at least backoff_min)")
	within("supervisor.park", s.Park, s.BackoffMin.Duration, 7*day, " (at least backoff_min)")
	within("supervisor.quota_recheck", s.QuotaRecheck, time.Minute, 7*day, " (each check is an API call)")
	if s.ProbeHost != "" {
		host, port, err := net.SplitHostPort(s.ProbeHost)
		n, perr := strconv.Atoi(port)
		if err != nil || host == "" || strings.ContainsAny(host, " \t") || perr != nil || n < 1 || n > 65535 {
			bad("supervisor.probe_host", "%q: want host:port, e.g. 1.1.1.1:443", s.ProbeHost)
		}
	}
	within("supervisor.probe_timeout", s.ProbeTimeout, time.Millisecond, time.Minute, "")
	for _, st := range s.Steps.Named() {
		key := "supervisor.steps." + st.Name + "."
		within(key+"wait", st.Wait, 0, day, "")
		within(key+"min_interval", st.MinInterval, 0, day, "")
		if st.PerDay < 0 {
			bad(key+"per_day", "%d: must not be negative (0 disables the step)", st.PerDay)
		}
		switch {
		case st.PerHour < 0:
			bad(key+"per_hour", "%d: must not be negative (0 disables the step)", st.PerHour)
		case st.PerHour > 60:
			bad(key+"per_hour", "%d: at most 60; a ladder that acts every minute is a reset loop", st.PerHour)
		case st.PerDay >= 0 && st.PerHour > st.PerDay:
			bad(key+"per_hour", "%d exceeds per_day (%d)", st.PerHour, st.PerDay)
		}
	}
}
