package supervisor

import (
	"fmt"
	"strings"
	"time"

	"cellagent/agent/config"
	"cellagent/agent/event"
	"cellagent/modem/bg96"
)

// State is the supervisor's judgement of the link.
type State string

// States. Unknown lasts until the first observation.
const (
	StateUnknown      State = "unknown"
	StateHealthy      State = "healthy"
	StateDegraded     State = "degraded"
	StateDown         State = "down"
	StateQuota        State = "quota-exhausted"
	StateUnresponsive State = "modem-unresponsive"
)

// problem is what the evidence says is broken, which decides the steps
// that may be taken: a reattach cannot help a modem that does not answer.
type problem int

const (
	probNone    problem = iota
	probNetwork         // not registered, not attached, or no data path
	probModem           // AT not answering, or the port gone
)

// minATFailures is how many probes in a row must fail before the modem
// counts as unresponsive, whatever unresponsive_after says.
const minATFailures = 3

// observation is one poll's evidence. Pointers are nil for what could not
// be read: "unknown" must not count as good or bad.
type observation struct {
	at      time.Time
	session int // the link session's Seq; 0 without one
	// linkGone: no session came up during a whole modem_timeout.
	linkGone bool
	atOK     bool
	atErr    string
	reg      *bg96.Registration
	attached *bool
	signal   bg96.Signal
	dataPath *bool
	dataErr  string
}

// streak is a run of bad observations of one kind.
type streak struct {
	n     int
	since time.Time
	why   string
}

func (s *streak) bad(at time.Time, why string) {
	if s.n == 0 {
		s.since = at
	}
	s.n++
	s.why = why
}

// verdict is the state with what it is based on.
type verdict struct {
	state   State
	problem problem
	reason  string
	since   time.Time // when the evidence behind the state began
}

// tracker turns observations into a verdict. Each kind of evidence keeps
// its own streak, so that one failed probe is never an outage.
type tracker struct {
	cfg  config.SupervisorConfig
	last observation
	seen bool

	reg, data, at streak
	// link is the run of polls without a modem session; gone says the
	// last one waited a whole modem_timeout in vain.
	link streak
	gone bool
	// sigBad is the signal's hysteresis state: set below a minimum,
	// cleared only when every reading is Hysteresis above its minimum.
	sigBad      bool
	sigBadSince time.Time
	sigWhy      string
	// quotaExhausted is set by the quota step and cleared by a good
	// observation or a quota that is available again.
	quotaExhausted bool
}

func (t *tracker) update(o observation) {
	t.last, t.seen = o, true
	if o.session == 0 {
		t.gone = o.linkGone
		why := "no modem session (the port is gone or being reopened)"
		if o.linkGone {
			why = "no modem session for " + t.cfg.ModemTimeout.Duration.String()
		}
		t.link.bad(o.at, why)
		return
	}
	t.link, t.gone = streak{}, false
	if !o.atOK {
		t.at.bad(o.at, o.atErr)
	} else {
		t.at = streak{}
		t.judgeRegistration(o)
		t.judgeSignal(o)
	}
	if o.dataPath != nil {
		if *o.dataPath {
			t.data = streak{}
		} else {
			t.data.bad(o.at, o.dataErr)
		}
	}
}

func (t *tracker) judgeRegistration(o observation) {
	if o.reg == nil {
		return
	}
	stat, dom := o.reg.Overall()
	switch {
	case dom == "":
		// No domain could be read: no evidence either way.
	case !stat.Registered():
		t.reg.bad(o.at, "not registered ("+regSummary(*o.reg)+")")
	case o.attached != nil && !*o.attached:
		t.reg.bad(o.at, fmt.Sprintf("registered (%s %s) but not attached to the packet domain", dom, stat))
	default:
		t.reg = streak{}
	}
}

// judgeSignal applies the thresholds with hysteresis. A radio without
// readings (no service) says nothing here: registration covers it.
func (t *tracker) judgeSignal(o observation) {
	type reading struct {
		name     string
		v, floor float64
		unit     string
	}
	var rs []reading
	if q := o.signal.QCSQ; q != nil {
		if q.RSRP != nil {
			rs = append(rs, reading{"RSRP", float64(*q.RSRP), float64(t.cfg.RSRPMin), "dBm"})
		}
		if q.SINR != nil {
			rs = append(rs, reading{"SINR", *q.SINR, t.cfg.SINRMin, "dB"})
		}
	}
	if len(rs) == 0 {
		if rssi := signalRSSI(o.signal); rssi != nil {
			rs = append(rs, reading{"RSSI", float64(*rssi), float64(t.cfg.RSSIMin), "dBm"})
		}
	}
	if len(rs) == 0 {
		return
	}
	var low []string
	good := true
	for _, r := range rs {
		if r.v < r.floor {
			low = append(low, fmt.Sprintf("%s %g %s below %g", r.name, r.v, r.unit, r.floor))
		}
		good = good && r.v >= r.floor+t.cfg.Hysteresis
	}
	switch {
	case len(low) > 0:
		if !t.sigBad {
			t.sigBad, t.sigBadSince = true, o.at
		}
		t.sigWhy = strings.Join(low, ", ")
	case good:
		t.sigBad = false
	}
}

func signalRSSI(s bg96.Signal) *int {
	if s.QCSQ != nil && s.QCSQ.RSSI != nil {
		return s.QCSQ.RSSI
	}
	if s.CSQ != nil {
		return s.CSQ.RSSI
	}
	return nil
}

// ok says whether nothing is wrong with the link, which is what ends a
// climb as a success; weak signal alone is no reason to keep climbing.
func (t *tracker) ok() bool {
	return t.seen && t.reg.n == 0 && t.data.n == 0 && t.at.n == 0 && t.link.n == 0
}

func (t *tracker) verdict(now time.Time) verdict {
	switch {
	case !t.seen:
		return verdict{state: StateUnknown, reason: "no observation yet"}
	case t.gone:
		return verdict{StateUnresponsive, probModem, t.link.why, t.link.since}
	case t.at.n >= minATFailures && now.Sub(t.at.since) >= t.cfg.UnresponsiveAfter.Duration:
		return verdict{StateUnresponsive, probModem,
			fmt.Sprintf("AT not answering for %s (%d probes failed; last: %s)", round(now.Sub(t.at.since)), t.at.n, t.at.why), t.at.since}
	case t.quotaExhausted:
		return verdict{state: StateQuota, reason: "the data quota is exhausted; no reset can refill it", since: now}
	}
	// Two observations in a row confirm a network problem; the grace
	// before acting is the ladder's observe step.
	var worst *streak
	for _, s := range []*streak{&t.reg, &t.data} {
		if s.n >= 2 && (worst == nil || s.since.Before(worst.since)) {
			worst = s
		}
	}
	if worst != nil {
		what := worst.why
		if worst == &t.data {
			what = "data path failing: " + what
		}
		return verdict{StateDown, probNetwork, fmt.Sprintf("%s for %s", what, round(now.Sub(worst.since))), worst.since}
	}
	if t.sigBad && now.Sub(t.sigBadSince) >= t.cfg.BadSignalFor.Duration {
		return verdict{state: StateDegraded, reason: fmt.Sprintf("weak signal for %s: %s", round(now.Sub(t.sigBadSince)), t.sigWhy), since: t.sigBadSince}
	}
	for _, s := range []struct {
		st   *streak
		what string
	}{{&t.link, ""}, {&t.at, "AT not answering"}, {&t.reg, ""}, {&t.data, "data path failing"}} {
		if s.st.n > 0 {
			why := strings.TrimPrefix(s.what+": "+s.st.why, ": ")
			return verdict{state: StateDegraded, reason: why + " (not yet confirmed)", since: s.st.since}
		}
	}
	return verdict{state: StateHealthy, since: now}
}

// round keeps durations in messages readable: "3m0s", not nanoseconds.
func round(d time.Duration) time.Duration { return d.Round(time.Second) }

// regSummary lists each domain read, EPS first, as the BG96 judges them.
func regSummary(r bg96.Registration) string {
	var parts []string
	for _, d := range []*bg96.Reg{r.EPS, r.GPRS, r.CS} {
		if d != nil {
			parts = append(parts, fmt.Sprintf("%s %s", d.Domain, d.Stat))
		}
	}
	return strings.Join(parts, ", ")
}

// figures are the numbers behind a state, for events and the status file.
func (o observation) figures() event.Attrs {
	f := event.Attrs{}
	if o.session > 0 {
		f["session"] = o.session
	}
	if o.reg != nil {
		for _, d := range []*bg96.Reg{o.reg.EPS, o.reg.GPRS, o.reg.CS} {
			if d != nil {
				f[strings.ToLower(string(d.Domain))] = d.Stat.String()
			}
		}
	}
	if o.attached != nil {
		f["attached"] = *o.attached
	}
	if q := o.signal.QCSQ; q != nil {
		f["mode"] = string(q.Mode)
		if q.RSRP != nil {
			f["rsrp_dbm"] = *q.RSRP
		}
		if q.SINR != nil {
			f["sinr_db"] = *q.SINR
		}
	}
	if rssi := signalRSSI(o.signal); rssi != nil {
		f["rssi_dbm"] = *rssi
	}
	if o.dataPath != nil {
		f["data_path"] = *o.dataPath
	}
	if !o.atOK && o.atErr != "" {
		f["at_error"] = o.atErr
	}
	return f
}
