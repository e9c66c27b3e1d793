package at_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"cellagent/modem/at"
	"cellagent/modem/bg96"
	"cellagent/modem/port"
)

// peer is the modem's end of a real pseudo-terminal, scripted by a test.
// The engine opens the other end with go.bug.st/serial as it would
// /dev/ttyUSB2.
type peer struct {
	t      *testing.T
	master *os.File
	in     chan []byte
	buf    []byte
}

func newPeer(t *testing.T) (*peer, string) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("pty: %v", err)
	}
	// A blocking *os.File cannot be closed while a Read is in progress; a
	// non-blocking one goes through the runtime poller, so closing it hangs
	// up the line at once, as unplugging the modem would.
	fd, err := unix.Dup(int(ptmx.Fd()))
	if err != nil {
		t.Fatalf("dup: %v", err)
	}
	ptmx.Close()
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatalf("nonblock: %v", err)
	}
	master := os.NewFile(uintptr(fd), "ptmx")
	tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatalf("termios: %v", err)
	}
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	if err := unix.IoctlSetTermios(int(tty.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatalf("termios: %v", err)
	}
	p := &peer{t: t, master: master, in: make(chan []byte, 64)}
	go func() {
		for {
			b := make([]byte, 256)
			n, err := master.Read(b)
			if n > 0 {
				p.in <- b[:n]
			}
			if err != nil {
				close(p.in)
				return
			}
		}
	}()
	t.Cleanup(func() {
		master.Close()
		tty.Close()
	})
	return p, tty.Name()
}

// engine opens the pty through the production port code and starts an
// engine on it, configured for the BG96 as the agent's are.
func engine(t *testing.T, opts ...at.Option) (*at.AT, *peer) {
	t.Helper()
	p, path := newPeer(t)
	sp, err := port.Open(path, 115200)
	if err != nil {
		t.Fatalf("open port: %v", err)
	}
	a := at.New(sp, append(bg96.EngineOptions(), opts...)...)
	t.Cleanup(func() { a.Close() })
	return a, p
}

// expect reads what the engine wrote until want has been seen, failing on
// anything else.
func (p *peer) expect(want string) {
	p.t.Helper()
	deadline := time.After(5 * time.Second)
	for len(p.buf) < len(want) {
		select {
		case b, ok := <-p.in:
			if !ok {
				p.t.Fatalf("port closed while waiting for %q (got %q)", want, p.buf)
			}
			p.buf = append(p.buf, b...)
		case <-deadline:
			p.t.Fatalf("timed out waiting for %q, got %q", want, p.buf)
		}
	}
	if got := string(p.buf[:len(want)]); got != want {
		p.t.Fatalf("engine wrote %q, want %q", got, want)
	}
	p.buf = p.buf[len(want):]
}

// quiet checks that the engine writes nothing for a moment.
func (p *peer) quiet(d time.Duration) {
	p.t.Helper()
	select {
	case b := <-p.in:
		p.t.Fatalf("engine wrote %q, want nothing", append(p.buf, b...))
	case <-time.After(d):
	}
	if len(p.buf) > 0 {
		p.t.Fatalf("engine wrote %q, want nothing", p.buf)
	}
}

func (p *peer) send(s string) {
	p.t.Helper()
	if _, err := p.master.Write([]byte(s)); err != nil {
		p.t.Fatalf("peer write: %v", err)
	}
}

// respond answers cmd with the given bytes once the engine has sent it.
func (p *peer) respond(cmd, answer string) {
	p.expect(cmd + "\r")
	p.send(answer)
}

type result struct {
	info []string
	err  error
}

func start(a *at.AT, ctx context.Context, cmd string, opts ...at.CommandOption) chan result {
	ch := make(chan result, 1)
	go func() {
		info, err := a.Command(ctx, cmd, opts...)
		ch <- result{info, err}
	}()
	return ch
}

func wait(t *testing.T, ch chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("command did not complete")
		return result{}
	}
}

// urcSink collects URCs from handlers for assertions.
type urcSink chan []string

func (s urcSink) handle(lines []string) { s <- lines }

func (s urcSink) next(t *testing.T) []string {
	t.Helper()
	select {
	case l := <-s:
		return l
	case <-time.After(5 * time.Second):
		t.Fatal("no URC delivered")
		return nil
	}
}

func joined(lines []string) string { return strings.Join(lines, "|") }
