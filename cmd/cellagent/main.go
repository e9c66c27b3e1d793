// Command cellagent is the device-side agent for gateways with a Quectel
// BG96-class modem, and the bench tools around it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type command struct {
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

var commands = map[string]command{
	"sim":     {"run the BG96 simulator on a pseudo-terminal", runSim},
	"at":      {"send AT commands to a modem, one-shot or interactively", runAT},
	"status":  {"show modem identity, registration, operator and signal", runStatus},
	"sms":     {"send, list and delete SMS (PDU mode)", runSMS},
	"bsc":     {"operator platform (BSC): quota, reset, and a platform simulator", runBSC},
	"fleet":   {"watch or list the gateways reporting to an MQTT broker", runFleet},
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

func main() {
	// A closed terminal (SIGHUP) ends the bench commands as Ctrl-C does, so
	// their deferred clean-up (links, temporary files) still runs; the
	// daemon takes SIGHUP as "reload" instead.
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP}
	if len(os.Args) > 1 && os.Args[1] == "run" {
		sigs = sigs[:2]
	}
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	code := run(ctx, &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		topUsage(e.stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "cellagent: unknown command %q\n\n", args[0])
		topUsage(e.stderr)
		return 2
	}
	err := c.run(ctx, e, args[1:])
	switch {
	case err == nil, errors.Is(err, pflag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(e.stderr, "cellagent %s: %v\n", args[0], err)
		return 2
	default:
		fmt.Fprintf(e.stderr, "cellagent %s: %v\n", args[0], err)
		return 1
	}
}

func topUsage(w io.Writer) {
	fmt.Fprintf(w, "cellagent %s — agent and bench tools for BG96-class cellular modems\n\nUsage: cellagent <command> [flags]\n\nCommands:\n", version)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'cellagent <command> --help' for the flags of a command.")
}

// newFlags makes a flag set whose --help prints the command's usage to
// stdout and whose errors come back as usage errors.
func newFlags(e *env, name, args, about string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stdout, "Usage: cellagent %s %s\n\n%s\n\nFlags:\n%s", name, args, about, fs.FlagUsages())
	}
	return fs
}

func parse(fs *pflag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			// pflag has printed the usage already.
			return err
		}
		return usageError{fmt.Errorf("%w (see --help)", err)}
	}
	return nil
}

// parseNoArgs parses a command that takes flags only.
func parseNoArgs(fs *pflag.FlagSet, args []string) error {
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))}
	}
	return nil
}

// logger writes human-readable logs to stderr; --verbose shows debug lines,
// which include the raw AT traffic when tracing.
func logger(w io.Writer, verbose bool) *slog.Logger {
	lvl := slog.LevelWarn
	if verbose {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl}))
}

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
