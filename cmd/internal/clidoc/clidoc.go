// Package clidoc writes a command's manual page (roff) and its bash, zsh
// and fish completion from the command's own definitions: the command
// table and the pflag sets, found by asking every command for its --help.
// A command or flag added to a binary is in its manual and completion at
// the next build, with no work per command. Any binary whose commands use
// pflag can use it (cellagent, the bench binary).
package clidoc

import (
	"regexp"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

// Flag is one flag of a command.
type Flag struct {
	Name, Short string
	// Value names the flag's argument ("" for a boolean switch).
	Value   string
	Default string
	Usage   string
}

// Command is one command or subcommand.
type Command struct {
	Path    []string // e.g. ["sms", "send"]
	Summary string   // one line, from the parent's table
	Args    string   // the synopsis after the command's name
	About   string   // the long description, examples included
	Flags   []Flag
	Subs    []*Command
}

// dispatcher says whether the command only hands over to its
// subcommands (no flags of its own).
func (c *Command) dispatcher() bool { return len(c.Subs) > 0 && len(c.Flags) == 0 }

// Name is the command's path joined by spaces.
func (c *Command) Name() string { return strings.Join(c.Path, " ") }

// Help is what a command says when asked for --help: its flag set when it
// has one (fs nil for a command that only dispatches to subcommands), and
// the text it printed.
type Help struct {
	FlagSet     *pflag.FlagSet
	Args, About string
	Text        string
}

// Asker runs the binary's command line with args ending in "--help" and
// reports what the command defined and printed.
type Asker func(args []string) Help

// subLine is a line of a dispatcher's help listing a subcommand: two
// spaces, the name, spaces, its summary.
var subLine = regexp.MustCompile(`^  ([a-z][a-z0-9-]*) +(\S.*)$`)

// Discover builds the command tree of program prog from its top-level
// table (name → summary): each command is asked for --help; one without a
// flag set is a dispatcher whose help lists its subcommands in a table,
// which are asked in turn.
func Discover(prog string, top map[string]string, ask Asker) []*Command {
	names := make([]string, 0, len(top))
	for n := range top {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []*Command
	for _, n := range names {
		out = append(out, discover(prog, []string{n}, top[n], ask))
	}
	return out
}

func discover(prog string, path []string, summary string, ask Asker) *Command {
	h := ask(append(append([]string(nil), path...), "--help"))
	c := &Command{Path: path, Summary: summary, Args: h.Args, About: h.About}
	seen := map[string]bool{}
	sub := func(name, summary string) {
		if !seen[name] {
			seen[name] = true
			c.Subs = append(c.Subs, discover(prog, append(append([]string(nil), path...), name), summary, ask))
		}
	}
	if h.FlagSet != nil {
		c.Flags = flags(h.FlagSet)
		// A command with one subcommand may take it as given ("bsc sms"
		// is "bsc sms send"): the flag set's name is the full one.
		if full := strings.Fields(h.FlagSet.Name()); len(full) > len(path) && strings.Join(full[:len(path)], " ") == strings.Join(path, " ") {
			c.Path = full
		}
	} else {
		// A dispatcher: its help is the description, its table the
		// children.
		c.About = strings.TrimSpace(h.Text)
		for _, line := range strings.Split(h.Text, "\n") {
			if m := subLine.FindStringSubmatch(line); m != nil && m[1] != prog {
				sub(m[1], m[2])
			}
		}
	}
	return c
}

func flags(fs *pflag.FlagSet) []Flag {
	var out []Flag
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		value, usage := pflag.UnquoteUsage(f)
		if f.Value.Type() == "bool" {
			value = ""
		}
		def := f.DefValue
		switch def {
		case "false", "0", "0s", "[]", "":
			def = ""
		}
		out = append(out, Flag{Name: f.Name, Short: f.Shorthand, Value: value, Default: def, Usage: usage})
	})
	return out
}

// walk calls f on every command of the tree, parents first.
func walk(cmds []*Command, f func(*Command)) {
	for _, c := range cmds {
		f(c)
		walk(c.Subs, f)
	}
}
