package clidoc

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// A program as the binaries are: a dispatcher with a table of
// subcommands, leaves with flags, and a subcommand taken as given.
func TestDiscover(t *testing.T) {
	leaf := func(names ...string) *pflag.FlagSet {
		fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
		for _, n := range names {
			fs.String(n, "", "the "+n)
		}
		fs.Bool("json", false, "print JSON")
		return fs
	}
	named := func(name string, flag string) *pflag.FlagSet {
		fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
		fs.String(flag, "", "the "+flag)
		return fs
	}
	helps := map[string]Help{
		"sms --help":         {Text: "Usage: p sms <send|list>\n\n  send     send one\n  list     list them\n"},
		"sms send --help":    {FlagSet: leaf("to", "text"), Args: "--to N", About: "Send."},
		"sms list --help":    {FlagSet: leaf("port"), Args: "--port P", About: "List."},
		"sim --help":         {FlagSet: leaf("symlink"), About: "Simulate."},
		"bsc --help":         {Text: "Usage: p bsc <sms|receive>\n\n  sms     send an SMS (sms send)\n  receive the endpoint\n  p bsc sms send\n"},
		"bsc sms --help":     {FlagSet: named("bsc sms send", "iccid"), About: "Send."},
		"bsc receive --help": {FlagSet: leaf("listen"), About: "Receive."},
	}
	var asked []string
	tree := Discover("p", map[string]string{"sms": "send SMS", "sim": "simulate", "bsc": "platform"}, func(args []string) Help {
		k := strings.Join(args, " ")
		asked = append(asked, k)
		return helps[k]
	})
	var got []string
	walk(tree, func(c *Command) {
		var fl []string
		for _, f := range c.Flags {
			fl = append(fl, f.Name+"="+f.Value)
		}
		got = append(got, c.Name()+" ["+strings.Join(fl, " ")+"]")
	})
	want := []string{"bsc []", "bsc sms send [iccid=string]", "bsc receive [json= listen=string]", "sim [json= symlink=string]", "sms []", "sms send [json= text=string to=string]", "sms list [json= port=string]"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("tree\n got %q\nwant %q", got, want)
	}
	if len(asked) != len(helps) {
		t.Errorf("asked %q", asked)
	}
}

// Text that roff would take as requests or escapes is written literally.
func TestRoff(t *testing.T) {
	for in, want := range map[string]string{
		"--port":    `\-\-port`,
		`a\b`:       `a\eb`,
		".start":    `\&.start`,
		"'quoted'":  `\&'quoted'`,
		"€ [ ] { }": `\[u20AC] [ ] { }`,
		"tab\tstop": "tab stop",
	} {
		if got := roff(in); got != want {
			t.Errorf("roff(%q) = %q, want %q", in, got, want)
		}
	}
}
