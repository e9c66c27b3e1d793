// Command cellagent is the device-side agent for gateways with a Quectel
// BG96-class modem: the binary that ships to gateways. The bench tools
// (simulators, fleet simulation) are in cmd/cellbench, so none of them is
// linked here; `make lint` checks that.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"cellagent/agent/memtrim"
	"cellagent/cmd/internal/clidoc"
	"cellagent/cmd/internal/cmdline"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type command struct {
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

var commands = map[string]command{
	"at":      {"send AT commands to a modem, one-shot or interactively", runAT},
	"status":  {"show modem identity, registration, operator and signal", runStatus},
	"sms":     {"send, list and delete SMS (PDU mode)", runSMS},
	"bsc":     {"operator platform (BSC): quota, reset, SMS and commands by SMS, the forwarder endpoint", runBSC},
	"fleet":   {"follow the gateways on an MQTT broker: watch, list, Prometheus exporter, web view", runFleet},
	"run":     {"run the agent (the systemd service)", runRun},
	"recover": {"ask the running agent for a recovery step", runRecover},
	"config":  {"check a configuration file, or print an example", runConfig},
	"version": {"print the version", runVersion},
}

// env is what a subcommand may touch, so tests can run it in-process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// usageError marks errors caused by the command line; they exit with 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }
func (usageError) UsageError()     {}

func main() {
	daemon := len(os.Args) > 1 && os.Args[1] == "run"
	grace := cmdline.Grace
	if daemon {
		grace = 0
		memtrim.Setup()
	}
	ctx, stop := cmdline.Signals("cellagent", !daemon, grace)
	code := run(ctx, &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, e *env, args []string) int {
	p := cmdline.Program{
		Name:     "cellagent",
		Title:    fmt.Sprintf("cellagent %s — the agent for gateways with a BG96-class cellular modem", version),
		Commands: map[string]cmdline.Command{},
		Version:  version,
		Manual: clidoc.Page{
			Summary: "agent for gateways with a BG96-class cellular modem",
			Description: `cellagent drives a Quectel BG96-class modem with AT commands on its serial
port, sends and receives SMS without losing any, reports attach,
registration and signal state over MQTT to fleet operators, and recovers
degraded links up to the operator's SIM reset API and a GPIO power cycle.

As a service, 'cellagent run' reads /etc/cellagent/cellagent.toml
('cellagent config example' prints every key) and logs to the journal
with each entry's priority and its attributes as fields (journalctl -o
verbose shows them). The other commands are the tools around it:
talk to the modem, show status, send SMS, ask the operator platform,
watch the fleet and send it commands.

Usage mistakes exit with 2, failures with 1. The MQTT topics and every
JSON output are documented in /usr/share/doc/cellagent/SCHEMA.md.`,
			SeeAlso: []string{"systemctl(1)", "journalctl(1)"},
		},
		Invoke: func(args []string, out io.Writer) {
			run(ctx, &env{stdin: strings.NewReader(""), stdout: out, stderr: out}, args)
		},
	}
	for name, c := range commands {
		p.Commands[name] = cmdline.Command{Summary: c.summary, Run: func(ctx context.Context, args []string) error { return c.run(ctx, e, args) }}
	}
	return p.Main(ctx, e.stdout, e.stderr, args)
}

func newFlags(e *env, name, args, about string) *pflag.FlagSet {
	return cmdline.NewFlags(e.stdout, e.stderr, "cellagent", name, args, about)
}

func parse(fs *pflag.FlagSet, args []string) error       { return cmdline.Parse(fs, args) }
func parseNoArgs(fs *pflag.FlagSet, args []string) error { return cmdline.ParseNoArgs(fs, args) }
func logger(w io.Writer, verbose bool) *slog.Logger      { return cmdline.Logger(w, verbose) }

func runVersion(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "version", "", "Print the version of this binary.")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "cellagent %s\n", version)
	return nil
}

// isTerminal reports whether w is a terminal, where redrawing the screen
// makes sense; piped output gets plain successive reports.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
