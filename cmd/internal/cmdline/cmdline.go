// Package cmdline holds what the project's two binaries (cellagent, the
// gateway's; cellbench, the bench's) share on their command lines: flag
// sets whose --help goes to stdout, usage errors that exit with 2, the
// human-readable logger and the dispatch of subcommands.
package cmdline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"cellagent/cmd/internal/clidoc"
)

// A UsageError is caused by the command line: Main exits with 2 for it.
// The binaries mark their own such errors with the method too.
type UsageError interface {
	error
	UsageError()
}

// Usage marks err as caused by the command line.
func Usage(err error) error { return usageError{err} }

type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }
func (usageError) UsageError()     {}

// NewFlags makes a flag set for "prog name" whose --help prints the
// command's usage to stdout and whose errors come back as usage errors.
func NewFlags(stdout, stderr io.Writer, prog, name, args, about string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: %s %s %s\n\n%s\n\nFlags:\n%s", prog, name, args, about, fs.FlagUsages())
	}
	if onFlags != nil {
		onFlags(fs, args, about)
	}
	return fs
}

// onFlags, while the documentation is made, is told of every flag set a
// command makes, so the manual and the completion come from the flags
// themselves (docs.go).
var onFlags func(fs *pflag.FlagSet, args, about string)

// Parse parses args into fs, turning flag errors into usage errors.
// Errors are returned, not printed: with ContinueOnError pflag writes to
// the flag set's output (stderr) only the notice of a deprecated flag.
func Parse(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			// pflag has printed the usage already.
			return err
		}
		return usageError{fmt.Errorf("%w (see --help)", err)}
	}
	return nil
}

// ParseNoArgs parses a command that takes flags only.
func ParseNoArgs(fs *pflag.FlagSet, args []string) error {
	if err := Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))}
	}
	return nil
}

// Logger writes human-readable logs to w; verbose shows debug lines, which
// include the raw AT traffic when tracing.
func Logger(w io.Writer, verbose bool) *slog.Logger {
	lvl := slog.LevelWarn
	if verbose {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl}))
}

// Command is one subcommand of a binary: its one-line summary and what
// runs it, bound to the binary's environment.
type Command struct {
	Summary string
	Run     func(ctx context.Context, args []string) error
	// Hidden keeps an old name working without listing it in the usage,
	// the manual or the completion.
	Hidden bool
}

// Program is a binary's name, its title line and its subcommands.
type Program struct {
	Name, Title string
	Commands    map[string]Command
	// Manual is what the manual page says besides the commands (its
	// Prog and Version are the program's).
	Manual clidoc.Page
	// Version is printed by --version, as the version command would.
	Version string
	// Invoke runs the binary's command line with args, its output into
	// out: DocsCommand asks each command for its --help through it.
	Invoke func(args []string, out io.Writer)
}

// Main runs the subcommand args[0] and returns the exit code: 0, 1 for
// a failure, 2 for a usage error.
func (p Program) Main(ctx context.Context, stdout, stderr io.Writer, args []string) int {
	if len(args) > 0 && args[0] == DocsCommand && p.Invoke != nil {
		if err := p.Docs(args[1:], p.Invoke); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", p.Name, err)
			return 1
		}
		return 0
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		p.usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	switch args[0] {
	case "--version":
		fmt.Fprintf(stdout, "%s %s\n", p.Name, p.Version)
		return 0
	}
	c, ok := p.Commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "%s: unknown command %q\n\n", p.Name, args[0])
		p.usage(stderr)
		return 2
	}
	err := c.Run(ctx, args[1:])
	switch {
	case err == nil, errors.Is(err, pflag.ErrHelp):
		return 0
	case errors.As(err, new(UsageError)):
		fmt.Fprintf(stderr, "%s %s: %v\n", p.Name, args[0], err)
		return 2
	default:
		fmt.Fprintf(stderr, "%s %s: %v\n", p.Name, args[0], err)
		return 1
	}
}

func (p Program) usage(w io.Writer) {
	fmt.Fprintf(w, "%s\n\nUsage: %s <command> [flags]\n\nCommands:\n", p.Title, p.Name)
	names := make([]string, 0, len(p.Commands))
	for n, c := range p.Commands {
		if !c.Hidden {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, p.Commands[n].Summary)
	}
	fmt.Fprintf(w, "\nRun '%s <command> --help' for the flags of a command.\n", p.Name)
}
