package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"cellagent/cmd/internal/clidoc"
)

// docsCommand writes the manual page and the shell completion, for the
// package build (scripts/deb); it is no user's command, so neither the
// usage nor the completion lists it.
const docsCommand = "__docs"

// onFlags, when set, is told about every flag set a command makes, so
// the documentation can be made from the flags themselves.
var onFlags func(fs *pflag.FlagSet, args, about string)

func runDocs(ctx context.Context, e *env, args []string) error {
	fs := pflag.NewFlagSet(docsCommand, pflag.ContinueOnError)
	dir := fs.String("out", ".", "directory for cellagent.1, cellagent.bash, _cellagent and cellagent.fish")
	date := fs.String("date", "", "the manual's date, YYYY-MM-DD (scripts/deb passes the commit date)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	top := map[string]string{}
	for n, c := range commands {
		top[n] = c.summary
	}
	tree := clidoc.Discover(top, func(args []string) clidoc.Help {
		var h clidoc.Help
		onFlags = func(fs *pflag.FlagSet, a, about string) { h.FlagSet, h.Args, h.About = fs, a, about }
		defer func() { onFlags = nil }()
		var out bytes.Buffer
		run(ctx, &env{stdin: bytes.NewReader(nil), stdout: &out, stderr: &out}, args)
		h.Text = out.String()
		return h
	})
	page := clidoc.Page{Prog: "cellagent", Version: version, Date: *date,
		Summary: "agent and bench tools for BG96-class cellular modems",
		Description: `cellagent drives a Quectel BG96-class modem with AT commands on its serial
port, sends and receives SMS without losing any, reports attach,
registration and signal state over MQTT to fleet operators, and recovers
degraded links up to the operator's SIM reset API and a GPIO power cycle.

As a service, 'cellagent run' reads /etc/cellagent/cellagent.toml
('cellagent config example' prints every key). The other commands are the
tools around it: talk to the modem, show status, send SMS, ask the operator
platform, watch the fleet.

Usage mistakes exit with 2, failures with 1. The MQTT topics and every
JSON output are documented in /usr/share/doc/cellagent/SCHEMA.md.`,
		SeeAlso: []string{"systemctl(1)", "journalctl(1)"},
	}
	files := []struct {
		name  string
		write func(*bytes.Buffer) error
	}{
		{"cellagent.1", func(b *bytes.Buffer) error { return clidoc.Man(b, page, tree) }},
		{"cellagent.bash", func(b *bytes.Buffer) error { return clidoc.Bash(b, "cellagent", tree) }},
		{"_cellagent", func(b *bytes.Buffer) error { return clidoc.Zsh(b, "cellagent", tree) }},
		{"cellagent.fish", func(b *bytes.Buffer) error { return clidoc.Fish(b, "cellagent", tree) }},
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
