package agent

import (
	"context"
	"encoding/json"
	"os"
	"runtime"
	"slices"
	"time"

	"cellagent/agent/atsession"
	"cellagent/agent/bearer"
	"cellagent/agent/jsonout"
	"cellagent/agent/nettime"
	"cellagent/agent/supervisor"
	"cellagent/modem/bg96"
	"cellagent/transport/mqtt"
)

// StatusFile is the name of the daemon's status file in its runtime
// directory.
const StatusFile = "status.json"

// Status is what the daemon writes to its status file, for `cellagent
// status` on the same machine: the port belongs to the daemon while it
// runs.
type Status struct {
	// V is jsonout.Version; the file follows the command-line JSON
	// conventions (SCHEMA.md).
	V        int        `json:"v"`
	Written  time.Time  `json:"written"`
	Version  string     `json:"version"`
	DeviceID string     `json:"device_id"`
	PID      int        `json:"pid"`
	Started  time.Time  `json:"started"`
	Link     LinkStatus `json:"link"`
	// Life is the modem's life in one view: the session's phase and the
	// recovery ladder's combined.
	Life    *Life        `json:"life,omitempty"`
	SMS     SMSStatus    `json:"sms"`
	Modem   *bg96.Status `json:"modem,omitempty"`
	ModemAt time.Time    `json:"modem_at,omitzero"`
	MQTT    mqtt.Stats   `json:"mqtt"`
	Health  *mqtt.Health `json:"health"`
	// Supervisor is the recovery ladder's view: state, step, budgets.
	Supervisor *supervisor.Snapshot `json:"supervisor,omitempty"`
	// Network is the network profile, configured against actual;
	// Bearer the data bearer ([data] mode not off).
	Network *NetworkStatus   `json:"network,omitempty"`
	Bearer  *bearer.Snapshot `json:"bearer,omitempty"`
	// NetworkTime is the network's time as the modem reported it, and
	// whether TLS uses it for want of a plausible system clock.
	NetworkTime *nettime.Status `json:"network_time,omitempty"`
	// SMSCommands counts signed SMS commands, when they are enabled.
	SMSCommands *SMSCommandsStatus `json:"sms_commands,omitempty"`
	// Goroutines, HeapBytes and RuntimeBytes are for soak tests and leak
	// hunts. RuntimeBytes is the memory the Go runtime holds from the
	// system (heap spans not yet returned, stacks, its own structures):
	// against the process's anonymous RSS it tells a leak in the heap
	// from memory the runtime keeps.
	Goroutines   int    `json:"goroutines"`
	HeapBytes    uint64 `json:"heap_bytes"`
	RuntimeBytes uint64 `json:"runtime_bytes"`
}

// SMSStatus is the outgoing SMS set-up.
type SMSStatus struct {
	// SMSC is the service centre MO SMS go through; empty while the SIM's
	// is not read yet.
	SMSC string `json:"smsc,omitempty"`
	// SMSCFrom says where it comes from: "config" ([sms] smsc) or "sim"
	// (the SIM's own, AT+CSCA).
	SMSCFrom string `json:"smsc_from"`
}

// SMSCommandsStatus counts the commands that came by SMS since the
// start: run, and refused (forged, replayed, from elsewhere, malformed).
type SMSCommandsStatus struct {
	Run     uint64 `json:"run"`
	Refused uint64 `json:"refused"`
}

// LinkStatus is the modem session's state.
type LinkStatus struct {
	Port  string    `json:"port"`
	Up    bool      `json:"up"`
	Seq   int       `json:"seq,omitempty"`
	Since time.Time `json:"since,omitzero"`
	// Phase is the session's (atsession.Phase), PhaseSince when it
	// began; Error why the last attempt failed or the last session
	// ended, until a session is up.
	Phase      string    `json:"phase,omitempty"`
	PhaseSince time.Time `json:"phase_since,omitzero"`
	Error      string    `json:"error,omitempty"`
}

func (d *daemon) statusJSON() ([]byte, error) {
	return json.MarshalIndent(d.status(), "", "  ")
}

func (d *daemon) status() Status {
	now := d.now()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st := Status{V: jsonout.Version, Written: jsonout.UTC(now), Version: d.o.Version, DeviceID: d.deviceID, PID: os.Getpid(),
		Started: jsonout.UTC(d.started), Link: LinkStatus{Port: d.cfg.Modem.Port}, Health: d.health(now),
		Goroutines: runtime.NumGoroutine(), HeapBytes: ms.HeapAlloc, RuntimeBytes: ms.Sys - ms.HeapReleased}
	if s, err := d.keeper.Current(); err == nil {
		st.Link.Up, st.Link.Seq, st.Link.Since = true, s.Seq, jsonout.UTC(s.Since)
	}
	phase := d.keeper.Snapshot()
	st.Link.Phase, st.Link.PhaseSince = string(phase.Phase), jsonout.UTC(phase.Since)
	if phase.Err != nil {
		st.Link.Error = phase.Err.Error()
	}
	st.SMS = SMSStatus{SMSC: d.cfg.SMS.SMSC, SMSCFrom: "config"}
	d.mu.Lock()
	if d.cfg.SMS.SMSC == "" {
		st.SMS = SMSStatus{SMSC: d.simSMSC, SMSCFrom: "sim"}
	}
	st.Modem, st.ModemAt = d.modem, jsonout.UTC(d.modemAt)
	c := d.client
	d.mu.Unlock()
	if c != nil {
		st.MQTT = c.Stats()
	}
	var sup *supervisor.Snapshot
	if d.sup != nil {
		snap := d.sup.Snapshot()
		sup = &snap
		utc := utcSnapshot(snap)
		st.Supervisor = &utc
	}
	l := life(phase, sup)
	l.Since = jsonout.UTC(l.Since)
	st.Life = &l
	if n := d.data.snapshot(); n != nil {
		n.CheckedAt = jsonout.UTC(n.CheckedAt)
		st.Network = n
	}
	if t := d.data.clock.Snapshot(); t != nil {
		t.NetworkTime, t.ReadAt = jsonout.UTC(t.NetworkTime), jsonout.UTC(t.ReadAt)
		st.NetworkTime = t
	}
	if d.data.bearer != nil {
		b := d.data.bearer.Snapshot()
		b.UpSince, b.LastFailureAt, b.NextDialAt = jsonout.UTC(b.UpSince), jsonout.UTC(b.LastFailureAt), jsonout.UTC(b.NextDialAt)
		st.Bearer = &b
	}
	if c := d.smsCmds; c != nil {
		st.SMSCommands = &SMSCommandsStatus{Run: c.run.Load(), Refused: c.refused.Load()}
	}
	return st
}

// utcSnapshot puts the supervisor's times in the status file's one form.
func utcSnapshot(s supervisor.Snapshot) supervisor.Snapshot {
	s.Since, s.NextActionAt, s.At = jsonout.UTC(s.Since), jsonout.UTC(s.NextActionAt), jsonout.UTC(s.At)
	s.Budgets = slices.Clone(s.Budgets)
	for i := range s.Budgets {
		s.Budgets[i].NextAllowed = jsonout.UTC(s.Budgets[i].NextAllowed)
	}
	s.LastActions = slices.Clone(s.LastActions)
	for i := range s.LastActions {
		s.LastActions[i].At = jsonout.UTC(s.LastActions[i].At)
	}
	return s
}

// readSMSC learns the SIM's service centre once per session when the
// configuration names none, for the status file; MO SMS then leave the
// PDU's field empty and the modem uses it.
func (d *daemon) readSMSC(ctx context.Context, s *atsession.Session) {
	d.mu.Lock()
	known := d.smscSeq == s.Seq
	d.mu.Unlock()
	if d.cfg.SMS.SMSC != "" || known {
		return
	}
	num, err := s.Modem.SMSC(ctx)
	if err != nil {
		d.log.Warn("agent: reading the SIM's service centre", "err", err)
		return
	}
	if num == "" {
		d.log.Warn("agent: the SIM names no service centre (AT+CSCA); MO SMS will fail until [sms] smsc is set")
	}
	d.mu.Lock()
	d.simSMSC, d.smscSeq = num, s.Seq
	d.mu.Unlock()
	kick(d.dirty)
}
