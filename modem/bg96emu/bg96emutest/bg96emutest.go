// Package bg96emutest starts the BG96 simulator for tests: the one helper the
// packages above modem/bg96emu share, so each test says only what is special
// about its modem.
package bg96emutest

import (
	"context"
	"path/filepath"
	"testing"

	"cellagent/modem/at"
	"cellagent/modem/bg96emu"
	"cellagent/modem/port"
)

// Start runs a simulated BG96 with cfg on a pseudo-terminal; it is closed
// when the test ends.
func Start(tb testing.TB, cfg bg96emu.Config) *bg96emu.Modem {
	tb.Helper()
	m := bg96emu.New(cfg)
	if err := m.Start(context.Background()); err != nil {
		tb.Fatalf("starting the BG96 simulator: %v", err)
	}
	tb.Cleanup(func() { m.Close() })
	return m
}

// Engine opens m's pty through the production port code and starts an AT
// engine with opts on it; it is closed when the test ends, before m.
func Engine(tb testing.TB, m *bg96emu.Modem, opts ...at.Option) *at.AT {
	tb.Helper()
	sp, err := port.Open(m.PTY(), port.DefaultBaud)
	if err != nil {
		tb.Fatalf("opening the simulator's pty: %v", err)
	}
	a := at.New(sp, opts...)
	tb.Cleanup(func() { a.Close() })
	return a
}

// Link makes dir/ttyBG96 a link to m's pty, as udev names a modem's port,
// and returns that path.
func Link(tb testing.TB, m *bg96emu.Modem, dir string) string {
	tb.Helper()
	tty := filepath.Join(dir, "ttyBG96")
	if err := m.Link(tty); err != nil {
		tb.Fatalf("linking the simulator's pty: %v", err)
	}
	return tty
}
