package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"cellagent/modem/bg96emu"
)

func runModem(ctx context.Context, e *env, args []string) error {
	var (
		symlink, dataSymlink string
		scenario             string
		cfg                  bg96emu.Config
		verbose              bool
	)
	fs := newFlags(e, "modem", "[flags]",
		`Run a simulated Quectel BG96 on a pseudo-terminal until interrupted. The
device path is printed on start; open it like /dev/ttyUSB2, e.g. with
'cellagent at --port PATH'. A scenario file (see testdata/scenarios/) drives
registration, signal, incoming SMS and faults over time.

Example:
  cellbench modem --symlink /tmp/ttyBG96 --scenario testdata/scenarios/demo.scn`)
	fs.StringVar(&symlink, "symlink", "", "also make a symlink to the pty here, kept pointing at it across simulated USB hang-ups")
	fs.StringVar(&symlink, "link", "", "old name of --symlink")
	_ = fs.MarkDeprecated("link", "use --symlink")
	fs.StringVar(&dataSymlink, "data-symlink", "", "also serve the data port (ATD*99***1# answers CONNECT) with a symlink to it here, like /dev/ttyBG96-data")
	fs.StringVar(&scenario, "scenario", "", "scenario file to play")
	fs.IntVar(&cfg.Baud, "baud", bg96emu.DefaultBaud, "line rate the output is paced to (8N1, 10 bits a byte); -1 for no pacing")
	fs.StringVar(&cfg.IMEI, "imei", "", "IMEI (default 866425031234567)")
	fs.StringVar(&cfg.ICCID, "iccid", "", "ICCID (default 89882280666012345678)")
	fs.StringVar(&cfg.IMSI, "imsi", "", "IMSI (default 901405100012345)")
	fs.IntVar(&cfg.StorageSize, "storage", 10, "SMS slots on the simulated SIM")
	fs.DurationVar(&cfg.BootDelay, "boot-delay", 3*time.Second, "time from a reset to RDY")
	fs.BoolVar(&cfg.StartUnregistered, "unregistered", false, "start without network coverage")
	fs.BoolVarP(&verbose, "verbose", "v", false, "log every command and scenario step to stderr")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if cfg.Baud == 0 || cfg.Baud < bg96emu.NoPacing {
		return usageError(fmt.Errorf("--baud %d: want a positive rate or -1", cfg.Baud))
	}
	sc, err := loadScenario(scenario)
	if err != nil {
		return err
	}
	log := logger(e.stderr, verbose)
	if verbose {
		cfg.Logger = log
	}
	m := bg96emu.New(cfg)
	if err := m.Start(ctx); err != nil {
		return err
	}
	defer m.Close()
	if symlink != "" {
		if err := m.Link(symlink); err != nil {
			return err
		}
	}
	if dataSymlink != "" {
		if err := m.StartDataPort(); err != nil {
			return err
		}
		if err := m.LinkDataPort(dataSymlink); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stdout, "BG96 simulator on %s", m.PTY())
	if symlink != "" {
		fmt.Fprintf(e.stdout, " (symlink %s)", symlink)
	}
	if dataSymlink != "" {
		fmt.Fprintf(e.stdout, ", data port %s", dataSymlink)
	}
	fmt.Fprintln(e.stdout, "; Ctrl-C to stop")

	return playScenario(ctx, m, sc)
}

func loadScenario(path string) (*bg96emu.Scenario, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	defer f.Close()
	sc, err := bg96emu.ParseScenario(f)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	return sc, nil
}

// playScenario plays sc (if any) on m until ctx ends; a scenario without a
// loop plays out and leaves the modem up.
func playScenario(ctx context.Context, m *bg96emu.Modem, sc *bg96emu.Scenario) error {
	done := make(chan error, 1)
	if sc != nil {
		go func() { done <- m.Run(ctx, sc) }()
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		<-ctx.Done()
		return nil
	}
}
