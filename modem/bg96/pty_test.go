package bg96

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/creack/pty"
	"go.bug.st/serial"
	"golang.org/x/sys/unix"

	"cellagent/modem/at"
)

// responder is a scripted modem on the master side of a real pty. It
// answers each command with the exact bytes the script gives (echo
// included when the script has it), so the engine's framing, routing
// and the serial driver are all exercised.
type responder struct {
	t      *testing.T
	master *os.File

	mu sync.Mutex
	// script maps a command, as sent, to successive answers; the last one
	// repeats. An empty answer is silence, as from a booting modem.
	script map[string][]string
	// hook, when set, runs after a command's answer has been written.
	hook func(cmd string)
	got  []string
}

// defaultScript answers the engine's fence and a plain AT.
var defaultScript = map[string][]string{
	"AT":       {"\r\nOK\r\n"},
	"AT+CMEE?": {"\r\n+CMEE: 2\r\n\r\nOK\r\n"},
}

// newLink opens a pty, serves script on its master, and returns an engine
// reading the slave through go.bug.st/serial, as production opens
// /dev/ttyUSB2.
func newLink(t *testing.T, script map[string][]string) (*at.AT, *responder) {
	t.Helper()
	m, s, err := pty.Open()
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	// A non-blocking duplicate goes through the runtime poller, so Close
	// interrupts the responder's Read.
	fd, err := unix.Dup(int(m.Fd()))
	_ = m.Close()
	if err != nil {
		t.Fatalf("dup master: %v", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatalf("non-blocking master: %v", err)
	}
	master := os.NewFile(uintptr(fd), "/dev/ptmx")
	// Raw mode: the line discipline must neither echo nor translate CR.
	tio, err := unix.IoctlGetTermios(int(s.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatalf("termios: %v", err)
	}
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	tio.Cflag &^= unix.CSIZE | unix.PARENB
	tio.Cflag |= unix.CS8
	tio.Cc[unix.VMIN], tio.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(int(s.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatalf("raw mode: %v", err)
	}
	port, err := serial.Open(s.Name(), &serial.Mode{BaudRate: 115200})
	if err != nil {
		t.Fatalf("serial open %s: %v", s.Name(), err)
	}
	r := &responder{t: t, master: master, script: map[string][]string{}}
	for k, v := range defaultScript {
		r.script[k] = v
	}
	for k, v := range script {
		r.script[k] = v
	}
	done := make(chan struct{})
	go r.serve(done)
	a := at.New(port)
	t.Cleanup(func() {
		_ = a.Close()
		_ = master.Close()
		<-done
		// Our slave fd stays open until here: Linux resets a pty's termios
		// when the last slave fd closes.
		_ = s.Close()
	})
	return a, r
}

func (r *responder) serve(done chan struct{}) {
	defer close(done)
	var buf bytes.Buffer
	p := make([]byte, 256)
	for {
		n, err := r.master.Read(p)
		buf.Write(p[:n])
		for {
			i := bytes.IndexByte(buf.Bytes(), '\r')
			if i < 0 {
				break
			}
			cmd := strings.TrimSpace(string(buf.Next(i + 1)))
			if cmd != "" {
				r.answer(cmd)
			}
		}
		if err != nil {
			return
		}
	}
}

func (r *responder) answer(cmd string) {
	r.mu.Lock()
	r.got = append(r.got, cmd)
	answers, ok := r.script[cmd]
	reply := "\r\nERROR\r\n"
	if ok && len(answers) > 0 {
		reply = answers[0]
		if len(answers) > 1 {
			r.script[cmd] = answers[1:]
		}
	}
	hook := r.hook
	r.mu.Unlock()
	r.write(reply)
	if hook != nil {
		hook(cmd)
	}
}

// write sends bytes to the host, e.g. a URC at a moment of the test's
// choosing.
func (r *responder) write(s string) {
	if s == "" {
		return
	}
	if _, err := io.WriteString(r.master, s); err != nil && !errors.Is(err, os.ErrClosed) {
		r.t.Errorf("responder write: %v", err)
	}
}

// commands returns the commands received so far, the engine's fences
// and AT polls included.
func (r *responder) commands() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

func (r *responder) setHook(h func(cmd string)) {
	r.mu.Lock()
	r.hook = h
	r.mu.Unlock()
}
