package sim

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// While the modem is off the bus its device node is gone, as udev removes
// /dev/ttyBG96: a host that reopens the link (or the old slave path) must
// not land on a pty that another program allocated meanwhile under the
// freed number.
func TestHangUpRemovesLinkMeanwhile(t *testing.T) {
	m, _ := startModem(t, fastConfig())
	link := filepath.Join(t.TempDir(), "ttyBG96")
	if err := m.Link(link); err != nil {
		t.Fatal(err)
	}
	if err := m.HangUp(time.Second); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(link); err == nil {
		t.Errorf("link still points at %q, a freed pty another program may get", target)
	}
	if p := m.PTY(); p != "" {
		t.Errorf("PTY() = %q while hung up, want \"\"", p)
	}
	deadline := time.Now().Add(5 * time.Second)
	for m.PTY() == "" {
		if time.Now().After(deadline) {
			t.Fatal("no new pty after hang-up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got, _ := os.Readlink(link); got != m.PTY() {
		t.Fatalf("link -> %q, want new pty %q", got, m.PTY())
	}
}
