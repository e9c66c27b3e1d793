package port

import (
	"strings"
	"testing"

	"github.com/creack/pty"
)

func TestSecondOpenRefused(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer tty.Close()
	a, err := Open(tty.Name(), 115200)
	if err != nil {
		t.Fatal(err)
	}
	// Bytes split between two readers are lost messages: the second
	// program must be told the port is taken, also when it runs as root.
	if _, err := Open(tty.Name(), 115200); err == nil || !strings.Contains(err.Error(), "port in use") {
		t.Fatalf("second open: %v", err)
	}
	a.Close()
	b, err := Open(tty.Name(), 115200)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	b.Close()
}

func TestMissingPort(t *testing.T) {
	if _, err := Open("/dev/nonexistent-tty", 0); err == nil || !strings.Contains(err.Error(), "no such port") {
		t.Fatalf("err = %v", err)
	}
}
