package cmdline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"cellagent/cmd/internal/clidoc"
)

// DocsCommand writes a program's manual page and shell completion, for
// the package build (scripts/deb): no user's command, so neither the
// usage nor the completion lists it. Main runs it through the
// program's Invoke.
const DocsCommand = "__docs"

// Docs writes <name>.1, <name>.bash, _<name> (zsh) and <name>.fish into
// --out, made from the program's commands by asking each for --help:
// invoke runs the binary's command line with args, its output into out.
func (p Program) Docs(args []string, invoke func(args []string, out io.Writer)) error {
	fs := pflag.NewFlagSet(DocsCommand, pflag.ContinueOnError)
	dir := fs.String("out", ".", "directory to write into")
	date := fs.String("date", "", "the manual's date, YYYY-MM-DD (scripts/deb passes the commit's)")
	if err := fs.Parse(args); err != nil {
		return Usage(err)
	}
	top := map[string]string{}
	for n, c := range p.Commands {
		if !c.Hidden {
			top[n] = c.Summary
		}
	}
	tree := clidoc.Discover(p.Name, top, func(args []string) clidoc.Help {
		var h clidoc.Help
		onFlags = func(fs *pflag.FlagSet, a, about string) { h.FlagSet, h.Args, h.About = fs, a, about }
		defer func() { onFlags = nil }()
		var out bytes.Buffer
		invoke(args, &out)
		h.Text = out.String()
		return h
	})
	page := p.Manual
	page.Prog, page.Version, page.Date = p.Name, p.Version, *date
	files := []struct {
		name  string
		write func(*bytes.Buffer) error
	}{
		{p.Name + ".1", func(b *bytes.Buffer) error { return clidoc.Man(b, page, tree) }},
		{p.Name + ".bash", func(b *bytes.Buffer) error { return clidoc.Bash(b, p.Name, tree) }},
		{"_" + p.Name, func(b *bytes.Buffer) error { return clidoc.Zsh(b, p.Name, tree) }},
		{p.Name + ".fish", func(b *bytes.Buffer) error { return clidoc.Fish(b, p.Name, tree) }},
	}
	var errs []error
	for _, f := range files {
		var b bytes.Buffer
		if err := f.write(&b); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.WriteFile(filepath.Join(*dir, f.name), b.Bytes(), 0o644); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("writing the documentation: %w", err)
	}
	return nil
}
