package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"cellagent/agent"
	"cellagent/agent/jsonout"
	"cellagent/modem/at"
	"cellagent/modem/bg96"
	"cellagent/modem/port"
)

func runStatus(ctx context.Context, e *env, args []string) error {
	var pf portFlags
	var asJSON bool
	var watch time.Duration
	var af agentFlags
	fs := newFlags(e, "status", "[--port PORT] [--json] [--watch INTERVAL]",
		`Show the modem's identity, registration per domain (CREG/CGREG/CEREG),
operator, access technology, band and signal. Values the modem reports as
unknown are left out rather than shown as numbers. With --watch the view is
refreshed until interrupted, and the port is reopened if it goes away.

Without --port, or when the port belongs to a running agent, the agent's
own view is shown instead, asked of its local API (api.sock in its runtime
directory), else read from the status file it keeps there: the modem as it
last read it, the link, the modem's life in one word (booting, up,
recovering, ...), MQTT, queues and the recovery ladder.

Examples:
  cellagent status
  cellagent status --port /tmp/ttyBG96
  cellagent status --port /dev/ttyUSB2 --json
  cellagent status --port /tmp/ttyBG96 --watch 2s`)
	pf.register(fs)
	af.register(fs)
	fs.BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	fs.DurationVar(&watch, "watch", 0, "refresh every INTERVAL until interrupted")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if watch < 0 || (watch > 0 && watch < 100*time.Millisecond) {
		return usageError{fmt.Errorf("--watch %s: want at least 100ms", watch)}
	}
	if pf.path == "" {
		return daemonStatus(ctx, e, &af, asJSON, "")
	}
	if watch == 0 {
		a, err := pf.open(e, at.WithInitialFence())
		if err != nil {
			if errors.Is(err, port.ErrBusy) {
				if derr := daemonStatus(ctx, e, &af, asJSON, pf.path+" is held by another program; the running agent's view follows\n"); derr == nil {
					return nil
				}
			}
			return err
		}
		defer a.Close()
		if err := pf.ready(ctx, e, a); err != nil {
			return err
		}
		st, err := readStatus(ctx, a)
		if err != nil {
			return explain(pf.path, err)
		}
		return render(e.stdout, st, asJSON)
	}
	return watchStatus(ctx, e, &pf, watch, asJSON)
}

// readStatus makes sure the modem answers, asks for registration URC mode 2
// so the queries include area and cell, and gathers the status. The view is
// partial rather than absent when single queries fail.
func readStatus(ctx context.Context, a *at.AT) (bg96.Status, error) {
	if _, err := a.Command(ctx, "AT", at.WithTimeout(2*time.Second)); err != nil {
		return bg96.Status{}, err
	}
	for _, c := range []string{"AT+CMEE=2", "AT+CREG=2", "AT+CGREG=2", "AT+CEREG=2"} {
		if _, err := a.Command(ctx, c); errors.Is(err, at.ErrClosed) {
			return bg96.Status{}, err
		}
	}
	st := bg96.New(a).Status(ctx)
	select {
	case <-a.Closed():
		return st, a.Err()
	default:
	}
	return st, nil
}

func watchStatus(ctx context.Context, e *env, pf *portFlags, every time.Duration, asJSON bool) error {
	var a *at.AT
	defer func() {
		if a != nil {
			a.Close()
		}
	}()
	clear := !asJSON && isTerminal(e.stdout)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		var st bg96.Status
		var err error
		if a == nil {
			a, err = pf.open(e, at.WithInitialFence())
			var ue usageError
			if errors.As(err, &ue) {
				return err
			}
		}
		if err == nil {
			st, err = readStatus(ctx, a)
			if errors.Is(err, at.ErrClosed) {
				a.Close()
				a = nil
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if clear {
			fmt.Fprint(e.stdout, "\x1b[H\x1b[2J")
		}
		if err != nil {
			fmt.Fprintf(e.stdout, "%s  %s: %v (retrying every %s)\n", time.Now().Format("15:04:05"), pf.path, explain(pf.path, err), every)
		} else {
			if !asJSON {
				fmt.Fprintf(e.stdout, "%s  %s\n", time.Now().Format("15:04:05"), pf.path)
			}
			if err := render(e.stdout, st, asJSON); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func render(w io.Writer, st bg96.Status, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(modemJSON{V: jsonout.Version, Status: st})
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\n", k, v)
	}
	id := st.Identity
	row("Modem", strings.TrimSpace(id.Manufacturer+" "+id.Model))
	row("Firmware", id.Firmware)
	row("IMEI", id.IMEI)
	row("ICCID", id.ICCID)
	row("IMSI", id.IMSI)
	if st.Functionality != nil {
		row("Function", funName(*st.Functionality))
	}
	reg := "no"
	if st.Registered {
		reg = "yes"
	}
	if st.RegState != nil {
		reg += fmt.Sprintf(" (%s, by %s)", st.RegState, st.RegDomain)
	}
	row("Registered", reg)
	for _, d := range []struct {
		name string
		r    *bg96.Reg
	}{{"  CREG", st.Registration.CS}, {"  CGREG", st.Registration.GPRS}, {"  CEREG", st.Registration.EPS}} {
		if d.r != nil {
			row(d.name, regLine(d.r))
		}
	}
	if op := st.Operator; op != nil {
		v := op.Name
		if op.AcT != nil {
			v += " (" + op.AcT.String() + ")"
		}
		row("Operator", v)
	}
	if n := st.Network; n != nil {
		if n.NoService {
			row("Network", "no service")
		} else {
			v := strings.Join(nonEmpty(n.AcT, n.Operator, n.Band), ", ")
			if n.Channel != nil {
				v += fmt.Sprintf(", channel %d", *n.Channel)
			}
			row("Network", v)
		}
	}
	row("Signal", signalLine(st.Signal))
	if st.Attached != nil {
		row("PS attach", map[bool]string{true: "attached", false: "detached"}[*st.Attached])
	}
	if len(st.Errors) > 0 {
		keys := make([]string, 0, len(st.Errors))
		for k := range st.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			row("! "+k, st.Errors[k])
		}
	}
	return tw.Flush()
}

func funName(f bg96.Functionality) string {
	switch f {
	case bg96.FunMinimum:
		return "minimum (0)"
	case bg96.FunFull:
		return "full (1)"
	case bg96.FunRFOff:
		return "radio off (4)"
	}
	return fmt.Sprintf("%d", int(f))
}

func regLine(r *bg96.Reg) string {
	parts := []string{r.Stat.String()}
	if r.LAC != nil {
		parts = append(parts, fmt.Sprintf("area %X", *r.LAC))
	}
	if r.CI != nil {
		parts = append(parts, fmt.Sprintf("cell %X", *r.CI))
	}
	if r.AcT != nil {
		parts = append(parts, r.AcT.String())
	}
	return strings.Join(parts, ", ")
}

func signalLine(s bg96.Signal) string {
	var parts []string
	if q := s.QCSQ; q != nil {
		parts = append(parts, string(q.Mode))
		add := func(name string, v *int, unit string) {
			if v != nil {
				parts = append(parts, fmt.Sprintf("%s %d %s", name, *v, unit))
			}
		}
		add("RSSI", q.RSSI, "dBm")
		add("RSRP", q.RSRP, "dBm")
		if q.SINR != nil {
			parts = append(parts, fmt.Sprintf("SINR %.1f dB", *q.SINR))
		}
		add("RSRQ", q.RSRQ, "dB")
		add("RSCP", q.RSCP, "dBm")
		add("Ec/Io", q.EcIo, "dB")
	}
	if c := s.CSQ; c != nil && c.RSSI != nil && (s.QCSQ == nil || s.QCSQ.RSSI == nil) {
		parts = append(parts, fmt.Sprintf("RSSI %d dBm (CSQ)", *c.RSSI))
	}
	return strings.Join(parts, ", ")
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// daemonStatus shows the running agent's view: from its API, else from
// its status file.
func daemonStatus(ctx context.Context, e *env, af *agentFlags, asJSON bool, note string) error {
	c, err := af.client()
	if err == nil {
		actx, cancel := apiCall(ctx)
		defer cancel()
		b, err := c.Status(actx)
		if err != nil {
			return err
		}
		return showAgentStatus(e, c.Path(), b, asJSON, note)
	}
	if !errors.Is(err, errNoAgent) {
		return err
	}
	path := filepath.Join(af.dir(), agent.StatusFile)
	b, ferr := os.ReadFile(path)
	if ferr != nil {
		return fmt.Errorf("no agent status at %s (is 'cellagent run' running? or give --port to ask the modem): %w", path, ferr)
	}
	return showAgentStatus(e, path, b, asJSON, note)
}

// lifeLine is the modem's life in words: "recovering (cfun-reset) since
// 20:31:05".
func lifeLine(l agent.Life) string {
	line := l.Phase
	if l.Step != "" {
		line += " (" + l.Step + ")"
	}
	if !l.Since.IsZero() {
		line += " since " + l.Since.Format(time.TimeOnly)
	}
	return line
}

// showAgentStatus prints the agent's status view b, read from source.
func showAgentStatus(e *env, source string, b []byte, asJSON bool, note string) error {
	var st agent.Status
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("agent status from %s: %w", source, err)
	}
	b = bytes.TrimSpace(b)
	if asJSON {
		_, err := e.stdout.Write(append(b, '\n'))
		return err
	}
	fmt.Fprint(e.stdout, note)
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	age := time.Since(st.Written).Round(time.Second)
	stale := ""
	// The agent rewrites the file at least every 15 s.
	if age > time.Minute {
		stale = "; stale: is the agent still running?"
	}
	fmt.Fprintf(tw, "Agent\t%s, pid %d, up since %s (status written %s ago%s)\n", st.Version, st.PID,
		st.Started.Format(time.DateTime), age, stale)
	fmt.Fprintf(tw, "Device id\t%s\n", st.DeviceID)
	link := "down"
	if st.Link.Up {
		link = fmt.Sprintf("up (session %d since %s)", st.Link.Seq, st.Link.Since.Format(time.TimeOnly))
	}
	fmt.Fprintf(tw, "Modem session\t%s %s\n", st.Link.Port, link)
	if l := st.Life; l != nil {
		fmt.Fprintf(tw, "Modem life\t%s\n", lifeLine(*l))
	}
	smsc := st.SMS.SMSC
	if smsc == "" {
		smsc = "not read yet"
	}
	fmt.Fprintf(tw, "SMSC\t%s (%s)\n", smsc, map[string]string{"sim": "the SIM's", "config": "[sms] smsc"}[st.SMS.SMSCFrom])
	mq := "disconnected"
	if st.MQTT.Connected {
		mq = fmt.Sprintf("connected (session %d)", st.MQTT.Session)
	}
	fmt.Fprintf(tw, "MQTT\t%s, %d published, %d connects, %d failures\n", mq, st.MQTT.Published, st.MQTT.Connects, st.MQTT.ConnectFailures)
	if h := st.Health; h != nil {
		fmt.Fprintf(tw, "Queued\t%d events/SMS, %d telemetry (%d telemetry dropped ever)\n", h.EventsQueued, h.TelemetryQueued, h.TelemetryDropped)
		if h.LastError != "" {
			fmt.Fprintf(tw, "Last error\t%s\n", h.LastError)
		}
	}
	if sv := st.Supervisor; sv != nil {
		line := string(sv.State)
		if sv.Reason != "" {
			line += " (" + sv.Reason + ")"
		}
		if !sv.Since.IsZero() {
			line += " since " + sv.Since.Format(time.TimeOnly)
		}
		fmt.Fprintf(tw, "Link health\t%s\n", line)
		if sv.Step != "" {
			step := sv.Step
			if sv.Parked {
				step += ", parked"
			}
			fmt.Fprintf(tw, "Recovery\tstep %s, round %d\n", step, sv.Rounds)
		}
		if sv.NextAction != "" {
			fmt.Fprintf(tw, "Next action\t%s at %s\n", sv.NextAction, sv.NextActionAt.Format(time.TimeOnly))
		}
		fmt.Fprintf(tw, "Actions today\t%d\n", sv.ActionsToday)
		for _, b := range sv.Budgets {
			left := fmt.Sprintf("%d/%d this hour, %d/%d today", b.HourLeft, b.PerHour, b.DayLeft, b.PerDay)
			if b.Blocked != "" {
				left += " (" + b.Blocked + ")"
			}
			fmt.Fprintf(tw, "  %s\t%s\n", b.Step, left)
		}
	}
	renderDataPath(tw, st)
	if err := tw.Flush(); err != nil {
		return err
	}
	if st.Modem != nil {
		fmt.Fprintf(e.stdout, "\nModem as read at %s:\n", st.ModemAt.Format(time.TimeOnly))
		return render(e.stdout, *st.Modem, false)
	}
	return nil
}

// renderDataPath prints the bearer and the network profile, configured
// against actual.
func renderDataPath(tw io.Writer, st agent.Status) {
	if b := st.Bearer; b != nil {
		line := fmt.Sprintf("%s, %s %s", b.Mode, b.Interface, b.State)
		if !b.UpSince.IsZero() {
			line += " since " + b.UpSince.Format(time.TimeOnly)
		}
		if len(b.Addresses) > 0 {
			line += ", " + strings.Join(b.Addresses, " ")
		}
		fmt.Fprintf(tw, "Data bearer\t%s\n", line)
		fmt.Fprintf(tw, "  traffic\t%d bytes in, %d out; %d dials\n", b.RxBytes, b.TxBytes, b.Dials)
		if len(b.DNS) > 0 {
			fmt.Fprintf(tw, "  dns\t%s\n", strings.Join(b.DNS, " "))
		}
		if b.LastFailure != "" {
			f := b.LastFailure
			if b.Cause != "" {
				f += " (+CEER: " + b.Cause + ")"
			}
			fmt.Fprintf(tw, "  last failure\t%s at %s\n", f, b.LastFailureAt.Format(time.TimeOnly))
		}
		if b.Blocked != "" {
			fmt.Fprintf(tw, "  blocked\t%s\n", b.Blocked)
		}
		if !b.NextDialAt.IsZero() {
			fmt.Fprintf(tw, "  next dial\t%s\n", b.NextDialAt.Format(time.TimeOnly))
		}
	}
	if nt := st.NetworkTime; nt != nil {
		line := fmt.Sprintf("%s (%s, zone %+dmin), system clock %+ds off", nt.NetworkTime.UTC().Format(time.DateTime), nt.Source, nt.ZoneMinutes, nt.SkewSeconds)
		if nt.UsingNetwork {
			line += "; the system clock is implausible: TLS uses the network's time"
		}
		fmt.Fprintf(tw, "Network time\t%s\n", line)
	}
	if n := st.Network; n != nil {
		fmt.Fprintf(tw, "Network profile\tchecked %s\n", n.CheckedAt.Format(time.TimeOnly))
		for _, s := range n.Settings {
			state := "as configured"
			if s.Error != "" {
				state = "error: " + s.Error
			} else if s.Want != "" && !strings.EqualFold(s.Want, s.Actual) {
				state = "differs"
			}
			fmt.Fprintf(tw, "  %s\twant %q, modem %q (%s)\n", s.Setting, s.Want, s.Actual, state)
		}
		if n.Fault != "" {
			fmt.Fprintf(tw, "  fault\t%s\n", n.Fault)
		}
	}
}

// modemJSON is `status --port --json`: the modem's status under the
// command-line JSON conventions (SCHEMA.md).
type modemJSON struct {
	V int `json:"v"`
	bg96.Status
}
