package supervisor

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"cellagent/agent/config"
	"cellagent/modem/bg96"
)

func reg(stat bg96.RegStat) *bg96.Registration {
	return &bg96.Registration{EPS: &bg96.Reg{Domain: bg96.DomainEPS, Stat: stat}, CS: &bg96.Reg{Domain: bg96.DomainCS, Stat: bg96.RegDenied}}
}

func lte(rsrp int, sinr float64) bg96.Signal {
	return bg96.Signal{QCSQ: &bg96.QCSQ{Mode: bg96.ModeCatM1, RSRP: &rsrp, SINR: &sinr}}
}

func yes() *bool { v := true; return &v }
func no() *bool  { v := false; return &v }

// Each line is one poll, 15 s apart; the verdict after it is checked.
func TestTracker(t *testing.T) {
	good := observation{session: 1, atOK: true, reg: reg(bg96.RegHome), attached: yes(), signal: lte(-95, 12)}
	with := func(f func(*observation)) observation { o := good; f(&o); return o }
	unreg := with(func(o *observation) { o.reg = reg(bg96.RegSearching) })
	silent := observation{session: 1, atErr: "AT: at: no final result code before the time limit"}
	type step struct {
		o      observation
		state  State
		reason string
	}
	for _, c := range []struct {
		name  string
		steps []step
	}{
		{"one bad poll is not an outage", []step{
			{good, StateHealthy, ""},
			{unreg, StateDegraded, "not registered (CEREG searching, CREG denied) (not yet confirmed)"},
			{good, StateHealthy, ""},
		}},
		{"two confirm it", []step{
			{unreg, StateDegraded, "not yet confirmed"},
			{unreg, StateDown, "not registered (CEREG searching, CREG denied) for 15s"},
		}},
		{"a Cat-M SIM denied on CS is registered", []step{
			{good, StateHealthy, ""},
		}},
		{"registered but detached", []step{
			{with(func(o *observation) { o.attached = no() }), StateDegraded, "registered (CEREG home) but not attached"},
			{with(func(o *observation) { o.attached = no() }), StateDown, "not attached to the packet domain for 15s"},
		}},
		{"a registration that cannot be read says nothing", []step{
			{unreg, StateDegraded, ""},
			{with(func(o *observation) { o.reg = nil }), StateDegraded, "not yet confirmed"},
		}},
		{"the modem must miss three probes over unresponsive_after", []step{
			{silent, StateDegraded, "AT not answering"},
			{silent, StateDegraded, "AT not answering"},
			{silent, StateDegraded, "AT not answering"},
			{silent, StateDegraded, "AT not answering"},
			{silent, StateUnresponsive, "AT not answering for 1m0s (5 probes failed"},
			{good, StateHealthy, ""},
		}},
		{"a port gone for modem_timeout", []step{
			{observation{}, StateDegraded, "no modem session (the port is gone or being reopened)"},
			{observation{linkGone: true}, StateUnresponsive, "no modem session for 3m0s"},
			{good, StateHealthy, ""},
		}},
		{"data path", []step{
			{with(func(o *observation) { o.dataPath, o.dataErr = no(), "MQTT connection down" }), StateDegraded, "data path failing: MQTT connection down"},
			{with(func(o *observation) { o.dataPath, o.dataErr = no(), "MQTT connection down" }), StateDown, "data path failing: MQTT connection down for 15s"},
			{with(func(o *observation) { o.dataPath = yes() }), StateHealthy, ""},
		}},
		{"weak signal degrades after bad_signal_for, with hysteresis", []step{
			{with(func(o *observation) { o.signal = lte(-125, 5) }), StateHealthy, ""},
			{with(func(o *observation) { o.signal = lte(-125, 5) }), StateHealthy, ""},
			{with(func(o *observation) { o.signal = lte(-118, -6) }), StateHealthy, ""},
		}},
	} {
		tr := tracker{cfg: config.Default().Supervisor}
		for i, s := range c.steps {
			s.o.at = t0.Add(time.Duration(i) * 15 * time.Second)
			tr.update(s.o)
			v := tr.verdict(s.o.at)
			if v.state != s.state || !strings.Contains(v.reason, s.reason) {
				t.Errorf("%s, poll %d: %s %q, want %s %q", c.name, i+1, v.state, v.reason, s.state, s.reason)
			}
		}
	}
}

// Signal below a minimum for bad_signal_for is degraded; it must climb
// the hysteresis above every minimum to count as good again.
func TestSignalHysteresis(t *testing.T) {
	cfg := config.Default().Supervisor // RSRP -120, SINR -5, hysteresis 3, 10m
	tr := tracker{cfg: cfg}
	poll := func(at time.Duration, rsrp int, sinr float64) verdict {
		o := observation{at: t0.Add(at), session: 1, atOK: true, reg: reg(bg96.RegHome), attached: yes(), signal: lte(rsrp, sinr)}
		tr.update(o)
		return tr.verdict(o.at)
	}
	if v := poll(0, -121, 3); v.state != StateHealthy {
		t.Errorf("bad for 0s: %s", v.state)
	}
	if v := poll(10*time.Minute, -119, 3); v.state != StateDegraded || !strings.Contains(v.reason, "weak signal for 10m0s: RSRP -121 dBm below -120") {
		t.Errorf("above the minimum but inside the hysteresis: %s %q", v.state, v.reason)
	}
	if v := poll(11*time.Minute, -117, -5.5); v.state != StateDegraded || !strings.Contains(v.reason, "SINR -5.5 dB below -5") {
		t.Errorf("SINR low: %s %q", v.state, v.reason)
	}
	if v := poll(12*time.Minute, -117, -2); v.state != StateHealthy || !tr.ok() {
		t.Errorf("RSRP and SINR 3 dB above: %s %q", v.state, v.reason)
	}
	gsm := func(rssi int) bg96.Signal { return bg96.Signal{CSQ: &bg96.CSQ{RSSI: &rssi}} }
	tr = tracker{cfg: cfg}
	for i, rssi := range []int{-107, -104, -103} {
		o := observation{at: t0.Add(time.Duration(i) * 6 * time.Minute), session: 1, atOK: true, reg: reg(bg96.RegHome), signal: gsm(rssi)}
		tr.update(o)
		if v, want := tr.verdict(o.at), []State{StateHealthy, StateHealthy, StateDegraded}[i]; v.state != want {
			t.Errorf("GSM RSSI %d: %s %q, want %s", rssi, v.state, v.reason, want)
		}
	}
}

func TestQuotaVerdict(t *testing.T) {
	tr := tracker{cfg: config.Default().Supervisor, quotaExhausted: true}
	tr.update(observation{at: t0, session: 1, atOK: true, reg: reg(bg96.RegSearching)})
	if v := tr.verdict(t0); v.state != StateQuota || v.problem != probNone {
		t.Errorf("exhausted: %+v", v)
	}
	tr.update(observation{at: t0.Add(time.Minute), linkGone: true})
	if v := tr.verdict(t0.Add(time.Minute)); v.state != StateUnresponsive {
		t.Errorf("a modem without a port is a modem problem whatever the quota: %+v", v)
	}
}

// probe_host is checked with a real TCP connect.
func TestProbeHost(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	s := &Supervisor{cfg: config.Default().Supervisor}
	s.cfg.ProbeHost = ln.Addr().String()
	if ok, why := s.probeData(context.Background()); ok == nil || !*ok || why != "" {
		t.Errorf("open port: %v %q", ok, why)
	}
	ln.Close()
	if ok, why := s.probeData(context.Background()); ok == nil || *ok || !strings.Contains(why, "TCP connect to "+s.cfg.ProbeHost) {
		t.Errorf("closed port: %v %q", ok, why)
	}
	s.cfg.ProbeHost = ""
	if ok, _ := s.probeData(context.Background()); ok != nil {
		t.Errorf("no probe, no MQTT state: %v", *ok)
	}
	s.SetDataPath(false)
	if ok, why := s.probeData(context.Background()); ok == nil || *ok || why != "MQTT connection down" {
		t.Errorf("MQTT down: %v %q", ok, why)
	}
}
