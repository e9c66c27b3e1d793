package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/spf13/pflag"

	"cellagent/agent/jsonout"
	"cellagent/transport/fleetinflux"
	"cellagent/transport/mqtt"
	"cellagent/transport/secret"
)

const fleetUsage = `Usage: cellagent fleet <watch|list|send|exporter|serve> [flags]

Follow the gateways that report to an MQTT broker (topic schema:
transport/mqtt/SCHEMA.md).

  watch   a live table of the gateways, redrawn in place on a terminal;
          one JSON line per update with --json
  list    the current snapshot from the retained messages, printed once
  send      send a command to a gateway and print its result
  exporter  Prometheus metrics of every gateway on /metrics
  serve     a live web view: fleet table, signal sparklines, timeline

The broker is tls://host[:8883]; plain tcp:// needs --allow-plaintext. A
password is read from a file (--password-file), never from a flag.

Run 'cellagent fleet <subcommand> --help' for its flags.
`

func runFleet(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, fleetUsage)
		return usageError{errors.New("missing subcommand: watch, list, send, exporter or serve")}
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(e.stdout, fleetUsage)
		return nil
	case "watch":
		return runFleetWatch(ctx, e, args[1:])
	case "list":
		return runFleetList(ctx, e, args[1:])
	case "send":
		return runFleetSend(ctx, e, args[1:])
	case "exporter":
		return runFleetExporter(ctx, e, args[1:])
	case "serve":
		return runFleetServe(ctx, e, args[1:])
	}
	return usageError{fmt.Errorf("unknown subcommand %q: want watch, list, send, exporter or serve", args[0])}
}

// brokerFlags are how both subcommands reach the broker.
type brokerFlags struct {
	broker, prefix            string
	caFile, certFile, keyFile string
	username, passwordFile    string
	allowPlaintext, asJSON    bool
	settle, timeout           time.Duration
}

func (b *brokerFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&b.broker, "broker", "", "broker URL: tls://host[:8883], or tcp://host[:1883] with --allow-plaintext")
	fs.StringVar(&b.prefix, "prefix", mqtt.DefaultPrefix, "topic prefix of the gateways")
	fs.BoolVar(&b.asJSON, "json", false, "print JSON instead of a table")
	fs.StringVar(&b.caFile, "ca-file", "", "PEM bundle of the CAs to trust (default: the system roots)")
	fs.StringVar(&b.certFile, "cert-file", "", "client certificate for mutual TLS (with --key-file)")
	fs.StringVar(&b.keyFile, "key-file", "", "key of the client certificate")
	fs.StringVar(&b.username, "username", "", "user name at the broker")
	fs.StringVar(&b.passwordFile, "password-file", "", "file holding the password (mode 0600), or a systemd credential name")
	fs.BoolVar(&b.allowPlaintext, "allow-plaintext", false, "allow a tcp:// broker: everything, password included, crosses the network in clear")
	fs.DurationVar(&b.settle, "settle", time.Second, "the retained snapshot is complete once the broker has sent nothing for this long")
	fs.DurationVar(&b.timeout, "timeout", 10*time.Second, "limit for connecting (TCP, TLS and MQTT)")
}

// options checks the flags, reads the password and validates the result
// with the mqtt package itself, all before any network traffic, so a
// mistake on the command line is reported alone.
func (b *brokerFlags) options() (mqtt.FleetOptions, error) {
	if b.broker == "" {
		return mqtt.FleetOptions{}, usageError{errors.New("--broker is required, e.g. --broker tls://broker.example.com:8883")}
	}
	if u, err := url.Parse(b.broker); err == nil && u.Scheme == "tcp" && !b.allowPlaintext {
		return mqtt.FleetOptions{}, usageError{fmt.Errorf("--broker %s is plain tcp://: use tls://, or add --allow-plaintext to send everything, password included, in clear", b.broker)}
	}
	if b.settle <= 0 || b.timeout <= 0 {
		return mqtt.FleetOptions{}, usageError{errors.New("--settle and --timeout must be positive")}
	}
	if b.passwordFile != "" && b.username == "" {
		return mqtt.FleetOptions{}, usageError{errors.New("--password-file needs --username")}
	}
	o := mqtt.FleetOptions{
		Conn: mqtt.Conn{
			Broker: b.broker, AllowPlaintext: b.allowPlaintext,
			CAFile: b.caFile, CertFile: b.certFile, KeyFile: b.keyFile,
			Username: b.username,
			// An operator's host is on a wired link: notice a dead
			// connection within a minute rather than the gateways' 20 min.
			KeepAlive:      time.Minute,
			PingTimeout:    10 * time.Second,
			ConnectTimeout: b.timeout,
		},
		Prefix: b.prefix,
	}
	if b.passwordFile != "" {
		p, err := secret.Read(b.passwordFile)
		if err != nil {
			return mqtt.FleetOptions{}, fmt.Errorf("--password-file: %w", err)
		}
		o.Password = p
	}
	if _, err := mqtt.NewFleet(o); err != nil {
		return mqtt.FleetOptions{}, usageError{strip(err)}
	}
	return o, nil
}

// strip drops the package's "mqtt: config: " prefix; the command's name
// already says where the message comes from.
func strip(err error) error {
	s := err.Error()
	if t, ok := strings.CutPrefix(s, "mqtt: config: "); ok {
		return errors.New(t)
	}
	return err
}

// explain turns a failed connection into what to check.
func (b *brokerFlags) explain(err error) error {
	who := "an anonymous connection"
	if b.username != "" {
		who = fmt.Sprintf("the login as %q", b.username)
	}
	switch {
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword), errors.Is(err, packets.ErrorRefusedNotAuthorised):
		// mosquitto answers a wrong password with "not authorised" too.
		hint := "check --username and --password-file"
		if b.username == "" {
			hint = "give --username and --password-file"
		}
		return fmt.Errorf("broker %s refused %s: not authorized (%s)", b.broker, who, hint)
	case errors.Is(err, packets.ErrorRefusedServerUnavailable), errors.Is(err, packets.ErrorRefusedIDRejected),
		errors.Is(err, packets.ErrorRefusedBadProtocolVersion):
		return fmt.Errorf("broker %s refused the connection: %w", b.broker, err)
	case errors.Is(err, packets.ErrorNetworkError):
		return fmt.Errorf("cannot reach broker %s: %w", b.broker, networkCause(err))
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fmt.Errorf("broker %s: %w", b.broker, err)
}

// networkCause digs the dial or TLS error out of paho's "network Error :
// <cause>", which says no more than that.
func networkCause(err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if m, ok := e.(interface{ Unwrap() []error }); ok {
			if errs := m.Unwrap(); len(errs) == 2 && errs[0] == packets.ErrorNetworkError {
				return errs[1]
			}
		}
	}
	return err
}

func runFleetList(ctx context.Context, e *env, args []string) error {
	var bf brokerFlags
	fs := newFlags(e, "fleet list", "--broker URL [--prefix P] [--json] [flags]",
		`Print the gateways under the prefix once, from the retained status and
telemetry the broker holds, and exit. Rows are sorted by gateway id; a
gateway whose last will has been published shows as OFFLINE. --json prints
one JSON array of the gateways.

Examples:
  cellagent fleet list --broker tls://broker.example.com --ca-file ca.pem \
      --username fleet --password-file /etc/cellagent/fleet.pass
  cellagent fleet list --broker tcp://127.0.0.1:1883 --allow-plaintext --json`)
	bf.register(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	o, err := bf.options()
	if err != nil {
		return err
	}
	o.Logger = logger(e.stderr, false) // payloads the reader ignores
	gws, err := mqtt.List(ctx, o, bf.settle)
	if err != nil {
		return bf.explain(err)
	}
	if bf.asJSON {
		out := fleetListJSON{V: jsonout.Version, Gateways: make([]gatewayJSON, 0, len(gws))}
		for _, g := range gws {
			out.Gateways = append(out.Gateways, gatewayOf(g))
		}
		return jsonout.Write(e.stdout, out)
	}
	if len(gws) == 0 {
		_, err := fmt.Fprintf(e.stdout, "no gateways under %s/ on %s\n", o.Prefix, bf.broker)
		return err
	}
	var buf bytes.Buffer
	writeTable(&buf, gws, time.Now())
	fmt.Fprintln(&buf, summary(gws))
	_, err = e.stdout.Write(buf.Bytes())
	return err
}

func runFleetWatch(ctx context.Context, e *env, args []string) error {
	var bf brokerFlags
	var share, format, footerFile string
	fs := newFlags(e, "fleet watch", "--broker URL [--prefix P] [--json|--format F] [--share GROUP] [flags]",
		`Show the gateways under the prefix and follow their status, telemetry and
events until interrupted. On a terminal the table is redrawn in place;
piped, it is printed once and followed by one line per update. With --json
every update is one JSON line holding the gateway's whole current state,
starting with one line per known gateway; a gateway whose retained status
was cleared gets a last line with "removed":true.

With --share the reader joins a shared subscription ($share/GROUP/...): the
broker hands each message to one member of the group, so this reader sees
only part of the traffic and starts without the retained snapshot.

With --format influx every message becomes one line of InfluxDB line
protocol (measurements cellagent_telemetry, cellagent_event,
cellagent_status, cellagent_sms; docs/fleet-tools.md), the same mapping
as the Telegraf recipe there, e.g. for 'influx write' or a file.

Examples:
  cellagent fleet watch --broker tls://broker.example.com --ca-file ca.pem \
      --username fleet --password-file /etc/cellagent/fleet.pass
  cellagent fleet watch --broker tcp://127.0.0.1:1883 --allow-plaintext --json`)
	bf.register(fs)
	fs.StringVar(&share, "share", "", "join the shared subscription GROUP")
	fs.StringVar(&footerFile, "footer-file", "", "on a terminal, print this file's text below the table at every redraw (notes, commands to try)")
	fs.StringVar(&format, "format", "table", "output: table, json (as --json) or influx (line protocol)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	var footer string
	if footerFile != "" {
		b, err := os.ReadFile(footerFile)
		if err != nil {
			return usageError{fmt.Errorf("--footer-file: %w", err)}
		}
		footer = string(b)
	}
	switch format {
	case "table":
	case "json":
		bf.asJSON = true
	case "influx":
		if bf.asJSON {
			return usageError{errors.New("--json and --format influx: choose one")}
		}
	default:
		return usageError{fmt.Errorf("--format %q: want table, json or influx", format)}
	}
	o, err := bf.options()
	if err != nil {
		return err
	}
	o.ShareGroup = share
	if _, err := mqtt.NewFleet(o); err != nil {
		return usageError{fmt.Errorf("--share: %w", strip(err))}
	}
	if format == "influx" {
		return watchInflux(ctx, e, o)
	}
	w := &fleetWatch{
		e: e, bf: &bf, shared: share != "",
		terminal: !bf.asJSON && isTerminal(e.stdout),
		rows:     map[string]mqtt.Gateway{},
		emitted:  map[string][]byte{},
		signal:   make(chan struct{}, 1),
		footer:   footer,
	}
	w.title = fmt.Sprintf("cellagent fleet watch  %s  %s/", bf.broker, o.Prefix)
	if w.shared {
		w.title += "  (shared: " + share + ")"
	}

	// A first, one-shot connection reports an unreachable broker or a
	// refused login at once (the follower below retries for ever) and,
	// read to the end of the retained messages, gives the starting view.
	probe := o
	probe.ShareGroup = ""
	probe.Logger = slog.New(slog.DiscardHandler)
	initial, err := mqtt.List(ctx, probe, bf.settle)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return bf.explain(err)
	}
	if w.shared {
		initial = nil // a member sees its share only, from the start
	}

	// Problems after that (lost connection, ignored payloads) go to
	// stderr, or into the header line on a terminal.
	if w.terminal {
		w.warn = &lastLine{}
		o.Logger = slog.New(slog.NewTextHandler(w.warn, &slog.HandlerOptions{
			Level: slog.LevelWarn,
			ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
				if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
					return slog.Attr{}
				}
				return a
			},
		}))
	} else {
		o.Logger = logger(e.stderr, false)
	}
	o.OnUpdate = w.push
	f, err := mqtt.NewFleet(o)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	err = w.loop(ctx, f, initial)
	cancel()
	if rerr := <-done; err == nil {
		err = rerr
	}
	return err
}

// fleetWatch is the state of one `fleet watch`.
type fleetWatch struct {
	e        *env
	bf       *brokerFlags
	shared   bool
	terminal bool
	title    string
	warn     *lastLine // terminal only
	footer   string    // below the table, terminal only

	rows    map[string]mqtt.Gateway
	emitted map[string][]byte // per gateway, the last JSON line or text row

	mu      sync.Mutex
	pending []mqtt.Gateway
	signal  chan struct{}
}

// push is the fleet's OnUpdate: it only queues, the loop prints.
func (w *fleetWatch) push(g mqtt.Gateway) {
	w.mu.Lock()
	w.pending = append(w.pending, g)
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

func (w *fleetWatch) take() []mqtt.Gateway {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.pending
	w.pending = nil
	return p
}

func (w *fleetWatch) loop(ctx context.Context, f *mqtt.Fleet, initial []mqtt.Gateway) error {
	var tick <-chan time.Time
	if w.terminal {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		tick = t.C
	}
	var lastDraw time.Time
	dirty := true
	draw := func() error {
		lastDraw, dirty = time.Now(), false
		return w.draw()
	}

	// Start from the probe's snapshot.
	for _, g := range initial {
		w.rows[g.ID] = g
	}
	if err := w.start(initial); err != nil {
		return err
	}
	if w.terminal {
		if err := draw(); err != nil {
			return err
		}
	}

	// The follower starts empty: while the broker replays the retained
	// messages it sees each gateway's status before its telemetry, and
	// its updates would show gateways half known. Wait until that replay
	// is over, then take its complete snapshot.
	if len(initial) > 0 {
		limit := time.NewTimer(w.bf.timeout + 2*w.bf.settle)
		defer limit.Stop()
		var quiet <-chan time.Time
	warm:
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-w.signal:
				quiet = time.After(w.bf.settle)
			case <-quiet:
				break warm
			case <-limit.C:
				break warm
			case <-tick:
				if err := draw(); err != nil {
					return err
				}
			}
		}
		w.mu.Lock()
		w.pending = nil
		snap := f.Snapshot()
		w.mu.Unlock()
		for _, g := range snap {
			if err := w.update(g); err != nil {
				return err
			}
		}
		dirty = true
	}

	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.signal:
			for _, g := range w.take() {
				if err := w.update(g); err != nil {
					return err
				}
			}
			dirty = true
		case <-tick:
		}
		if w.terminal && (dirty && time.Since(lastDraw) >= 200*time.Millisecond || time.Since(lastDraw) >= time.Second) {
			if err := draw(); err != nil {
				return err
			}
		}
	}
}

// start prints the first view when it is not redrawn in place.
func (w *fleetWatch) start(gws []mqtt.Gateway) error {
	switch {
	case w.terminal:
		return nil
	case w.bf.asJSON:
		for _, g := range gws {
			if err := w.update(g); err != nil {
				return err
			}
		}
		return nil
	}
	for _, g := range gws {
		w.emitted[g.ID] = textLine(g)
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%s  %s\n", time.Now().Format("15:04:05"), w.title)
	if len(gws) > 0 {
		writeTable(&buf, gws, time.Now())
	}
	fmt.Fprintln(&buf, summary(gws))
	_, err := w.e.stdout.Write(buf.Bytes())
	return err
}

// update folds one gateway into the view and, unless it changes nothing
// there (a replayed retained message after a reconnect), prints it.
func (w *fleetWatch) update(g mqtt.Gateway) error {
	if g.Removed {
		delete(w.rows, g.ID)
	} else {
		w.rows[g.ID] = g
	}
	if w.terminal {
		return nil
	}
	var line []byte
	if w.bf.asJSON {
		var err error
		if line, err = json.Marshal(gatewayOf(g)); err != nil {
			return err
		}
	} else {
		line = textLine(g)
	}
	if bytes.Equal(w.emitted[g.ID], line) {
		return nil
	}
	if g.Removed {
		delete(w.emitted, g.ID)
	} else {
		w.emitted[g.ID] = line
	}
	if w.bf.asJSON {
		_, err := w.e.stdout.Write(append(line, '\n'))
		return err
	}
	text := string(line)
	if g.Removed {
		text = g.ID + "  removed"
	}
	_, err := fmt.Fprintf(w.e.stdout, "%s  %s\n", time.Now().Format("15:04:05"), text)
	return err
}

// draw redraws the whole screen in one write: home, each line cleared to
// its end, then the rest of the screen cleared.
func (w *fleetWatch) draw() error {
	gws := make([]mqtt.Gateway, 0, len(w.rows))
	for _, g := range w.rows {
		gws = append(gws, g)
	}
	sort.SliceStable(gws, func(i, j int) bool { return gws[i].ID < gws[j].ID })
	now := time.Now()
	var body bytes.Buffer
	fmt.Fprintf(&body, "%s  %s\n%s\n", now.Format("15:04:05"), w.title, summary(gws))
	if s := w.warn.String(); s != "" {
		fmt.Fprintf(&body, "! %s\n", truncate(s, 160))
	}
	body.WriteString("\n")
	if len(gws) > 0 {
		writeTable(&body, gws, now)
	} else {
		body.WriteString("(no gateways yet)\n")
	}
	if w.footer != "" {
		body.WriteString("\n" + strings.TrimRight(w.footer, "\n") + "\n")
	}
	var out bytes.Buffer
	out.WriteString("\x1b[H")
	for _, l := range strings.SplitAfter(body.String(), "\n") {
		out.WriteString(strings.TrimSuffix(l, "\n"))
		if strings.HasSuffix(l, "\n") {
			out.WriteString("\x1b[K\n")
		}
	}
	out.WriteString("\x1b[J")
	_, err := w.e.stdout.Write(out.Bytes())
	return err
}

// textLine is a gateway's update line when piped: the table's cells
// without last seen, which is "now".
func textLine(g mqtt.Gateway) []byte {
	c := cells(g, time.Time{})
	return []byte(strings.Join(append(c[:6:6], c[7]), "  "))
}

var tableHeader = []string{"ID", "STATE", "REG", "ACT", "OPERATOR", "RSRP/SINR", "LAST SEEN", "LAST EVENT"}

// writeTable writes the gateways, in the order given, as aligned columns.
func writeTable(w io.Writer, gws []mqtt.Gateway, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(tableHeader, "\t"))
	for _, g := range gws {
		fmt.Fprintln(tw, strings.Join(cells(g, now), "\t"))
	}
	tw.Flush()
}

// cells are the columns of one gateway, "-" where nothing is known; the
// ages are relative to now (left out when now is zero).
func cells(g mqtt.Gateway, now time.Time) []string {
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	state := "OFFLINE"
	switch {
	case g.Online:
		state = "online"
	case g.Session == 0 && g.Identity == (mqtt.Identity{}):
		state = "?" // telemetry without any status yet
	}
	signal := "-"
	if g.RSRP != nil || g.SINR != nil {
		r, s := "-", "-"
		if g.RSRP != nil {
			r = fmt.Sprint(*g.RSRP)
		}
		if g.SINR != nil {
			s = fmt.Sprintf("%.1f", *g.SINR)
		}
		signal = r + "/" + s
	}
	event := g.LastEvent
	if event != "" {
		event = truncate(event, 48)
		if !now.IsZero() && !g.LastEventAt.IsZero() {
			event += " (" + ago(now, g.LastEventAt) + ")"
		}
	}
	seen := "-"
	if !now.IsZero() {
		seen = ago(now, g.LastSeen)
	}
	return []string{g.ID, state, dash(g.Reg), dash(g.Act), dash(g.Operator), signal, seen, dash(event)}
}

func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ") // no tabs or newlines in a cell
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// ago says how long before now t was: "12s ago", "5m ago", "3h ago",
// "2d ago"; "never" for the zero time. A time ahead of now (a gateway
// whose clock runs fast) says so rather than posing as fresh.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	suffix := " ago"
	if d < -2*time.Second {
		d, suffix = -d, " ahead"
	} else if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds%s", int(d/time.Second), suffix)
	case d < time.Hour:
		return fmt.Sprintf("%dm%s", int(d/time.Minute), suffix)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%s", int(d/time.Hour), suffix)
	}
	return fmt.Sprintf("%dd%s", int(d/(24*time.Hour)), suffix)
}

func summary(gws []mqtt.Gateway) string {
	online := 0
	for _, g := range gws {
		if g.Online {
			online++
		}
	}
	noun := "gateways"
	if len(gws) == 1 {
		noun = "gateway"
	}
	return fmt.Sprintf("%d %s, %d online, %d offline", len(gws), noun, online, len(gws)-online)
}

// lastLine keeps the last line written to it: the newest warning, for the
// header of the terminal view.
type lastLine struct {
	mu   sync.Mutex
	line string
	at   time.Time
}

func (l *lastLine) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.line, l.at = strings.TrimSpace(string(p)), time.Now()
	return len(p), nil
}

func (l *lastLine) String() string {
	if l == nil {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.line == "" {
		return ""
	}
	return l.at.Format("15:04:05") + " " + l.line
}

// fleetListJSON is `fleet list --json`; `fleet watch --json` prints one
// gatewayJSON per line (SCHEMA.md, command-line JSON).
type fleetListJSON struct {
	V        int           `json:"v"`
	Gateways []gatewayJSON `json:"gateways"`
}

type gatewayJSON struct {
	V int `json:"v"`
	mqtt.Gateway
}

func gatewayOf(g mqtt.Gateway) gatewayJSON {
	g.LastSeen, g.LastEventAt = jsonout.UTC(g.LastSeen), jsonout.UTC(g.LastEventAt)
	return gatewayJSON{V: jsonout.Version, Gateway: g}
}

func runFleetSend(ctx context.Context, e *env, args []string) error {
	var bf brokerFlags
	var wait time.Duration
	fs := newFlags(e, "fleet send", "--broker URL [flags] DEVICE COMMAND [JSON]",
		`Send a command to a gateway, as a fleet operator does, and print the
gateway's result. COMMAND is one of sms/send, status, recover; JSON is its
payload as SCHEMA.md documents it (without JSON: {"id":"<a new id>"}). The
payload is checked before it is sent; the command goes out with QoS 1 and
is not retained, so a gateway that is offline runs it when it is back.
Exit status 1 when the gateway refuses the command or no result comes
within --wait.

Examples:
  cellagent fleet send --broker tcp://127.0.0.1:1883 --allow-plaintext 89882280666012345678 status
  cellagent fleet send --broker tcp://127.0.0.1:1883 --allow-plaintext 89882280666012345678 \
      sms/send '{"id":"op-1","to":"5432145","text":"hello from the fleet"}'`)
	bf.register(fs)
	fs.DurationVar(&wait, "wait", 30*time.Second, "how long to wait for the gateway's result")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 2 || fs.NArg() > 3 {
		return usageError{errors.New("want DEVICE COMMAND [JSON]")}
	}
	device, name := fs.Arg(0), fs.Arg(1)
	payload := []byte(fs.Arg(2))
	if fs.NArg() == 2 {
		var b [4]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
		payload = []byte(`{"id":"cli-` + hex.EncodeToString(b[:]) + `"}`)
	}
	o, err := bf.options()
	if err != nil {
		return err
	}
	r, err := mqtt.SendCommand(ctx, o, device, name, payload, wait)
	var ce *mqtt.CommandError
	switch {
	case errors.As(err, &ce):
		return usageError{fmt.Errorf("%s %s: %s", name, device, ce.Reason)}
	case errors.Is(err, mqtt.ErrNoResult):
		return err
	case err != nil:
		return bf.explain(err)
	}
	if bf.asJSON {
		if err := jsonout.Write(e.stdout, sendJSON{V: jsonout.Version, Device: device, Command: name, ID: r.ID, OK: r.OK,
			Error: r.Error, At: jsonout.UTC(time.Unix(r.TS, 0))}); err != nil {
			return err
		}
	} else if r.OK {
		fmt.Fprintf(e.stdout, "%s %s: accepted by %s\n", name, r.ID, device)
	}
	if !r.OK {
		return fmt.Errorf("%s %s: refused by %s: %s", name, r.ID, device, r.Error)
	}
	return nil
}

// sendJSON is `fleet send --json`: the gateway's result.
type sendJSON struct {
	V       int       `json:"v"`
	Device  string    `json:"device"`
	Command string    `json:"command"`
	ID      string    `json:"id"`
	OK      bool      `json:"ok"`
	Error   string    `json:"error,omitempty"`
	At      time.Time `json:"at"`
}

// watchInflux prints every message the reader applies as line protocol,
// starting with the retained ones.
func watchInflux(ctx context.Context, e *env, o mqtt.FleetOptions) error {
	o.Logger = logger(e.stderr, false)
	var mu sync.Mutex
	var werr error
	o.OnMessage = func(_ mqtt.Gateway, m mqtt.FleetMessage) {
		line, ok, err := fleetinflux.Line(o.Prefix, m.Topic, m.Payload)
		if err != nil {
			o.Logger.Warn("fleet watch: no line for a message", "err", err)
		}
		if !ok {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if werr == nil {
			_, werr = io.WriteString(e.stdout, line+"\n")
		}
	}
	f, err := mqtt.NewFleet(o)
	if err != nil {
		return err
	}
	if err := f.Run(ctx); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	return werr
}
