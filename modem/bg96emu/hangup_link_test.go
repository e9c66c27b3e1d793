package bg96emu

import (
	"os"
	"os/exec"
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

// A process started after the modem (a broker, in the daemon's tests) must
// not inherit the pty master: holding it open would keep the line up, and
// the host would never see the hang-up.
func TestHangUpReachesHostDespiteChildProcess(t *testing.T) {
	m, _ := startModem(t, fastConfig())
	host, err := os.OpenFile(m.PTY(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = child.Process.Kill()
		_ = child.Wait()
	}()
	read := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := host.Read(buf); err != nil {
				read <- err
				return
			}
		}
	}()
	if err := m.HangUp(time.Minute); err != nil {
		t.Fatal(err)
	}
	select {
	case <-read:
	case <-time.After(5 * time.Second):
		t.Fatal("the host's read survived the hang-up: the child holds the pty master")
	}
}
