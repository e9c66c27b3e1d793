// Command cellbench is the bench around cellagent: the BG96 simulator on a
// pseudo-terminal, the simulator of the operator's BSC platform (with a
// simulated modem wired to it) and the fleet simulation. It is never
// installed on a gateway; cmd/cellagent is the binary that is.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/pflag"

	"cellagent/cmd/internal/clidoc"
	"cellagent/cmd/internal/cmdline"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// env is what a subcommand may touch, so tests can run it in-process.
type env struct {
	stdout, stderr io.Writer
}

// usageError marks errors caused by the command line; they exit with 2.
func usageError(err error) error { return cmdline.Usage(err) }

func main() {
	ctx, stop := cmdline.Signals("cellbench", true, cmdline.Grace)
	code := run(ctx, &env{stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, e *env, args []string) int {
	bind := func(f func(context.Context, *env, []string) error) func(context.Context, []string) error {
		return func(ctx context.Context, args []string) error { return f(ctx, e, args) }
	}
	p := cmdline.Program{
		Name:    "cellbench",
		Title:   fmt.Sprintf("cellbench %s — simulators for the cellagent bench", version),
		Version: version,
		Commands: map[string]cmdline.Command{
			"modem":    {Summary: "run the BG96 simulator on a pseudo-terminal", Run: bind(runModem)},
			"platform": {Summary: "run the operator platform (BSC) simulator, with a simulated BG96 for its SIM", Run: bind(runPlatform)},
			"fleet":    {Summary: "run a fleet of simulated gateways and their agents against a broker, and measure it", Run: bind(runFleet)},
			// The old name of "modem", for scripts and harnesses written
			// before the rename.
			"sim": {Hidden: true, Run: func(ctx context.Context, args []string) error {
				fmt.Fprintln(e.stderr, "cellbench: 'cellbench sim' is deprecated; use 'cellbench modem'")
				return runModem(ctx, e, args)
			}},
		},
		Manual: clidoc.Page{
			Summary: "simulators for the cellagent bench",
			Description: `cellbench runs what a bench needs around cellagent, on one machine: a
simulated Quectel BG96 on a pseudo-terminal (modem), a simulator of the
operator's Business Smart Connect platform (platform), and a fleet of
simulated gateways (fleet). It is never installed on a gateway.`,
			SeeAlso: []string{"cellagent(1)"},
		},
		Invoke: func(args []string, out io.Writer) { run(ctx, &env{stdout: out, stderr: out}, args) },
	}
	return p.Main(ctx, e.stdout, e.stderr, args)
}

func newFlags(e *env, name, args, about string) *pflag.FlagSet {
	return cmdline.NewFlags(e.stdout, e.stderr, "cellbench", name, args, about)
}

func parseNoArgs(fs *pflag.FlagSet, args []string) error { return cmdline.ParseNoArgs(fs, args) }
func logger(w io.Writer, verbose bool) *slog.Logger      { return cmdline.Logger(w, verbose) }
