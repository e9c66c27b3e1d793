package main

import (
	"context"
	"errors"
	"fmt"

	"cellagent/agent/config"
)

func runConfig(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "config", "check FILE | example",
		`Check a configuration file, printing every problem with its key and line,
or print a commented example with every key at its default.

Examples:
  cellagent config check /etc/cellagent/cellagent.toml
  cellagent config example > cellagent.toml`)
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() == 1 && fs.Arg(0) == "example":
		fmt.Fprint(e.stdout, config.Example)
		return nil
	case fs.NArg() == 2 && fs.Arg(0) == "check":
		cfg, err := config.Load(fs.Arg(1))
		if err == nil {
			err = config.CheckFiles(cfg, fs.Arg(1))
		}
		if err != nil {
			var ps *config.Problems
			if errors.As(err, &ps) {
				fmt.Fprintln(e.stdout, ps.Error())
				return fmt.Errorf("%s is not valid", fs.Arg(1))
			}
			return err
		}
		fmt.Fprintf(e.stdout, "%s: ok\n", fs.Arg(1))
		return nil
	}
	return usageError{errors.New("want 'check FILE' or 'example'")}
}
