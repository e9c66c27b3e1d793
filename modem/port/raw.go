package port

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// MakeRaw puts the tty behind f in raw 8-bit mode, as cfmakeraw(3) does,
// and sets the extra control flags cflag (e.g. unix.CLOCAL|unix.HUPCL).
// It is for the ttys that are handed on as files: a pty's slave side, a
// data port given to pppd.
func MakeRaw(f *os.File, cflag uint32) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("raw mode %s: %w", f.Name(), err)
	}
	var ierr error
	cerr := rc.Control(func(fd uintptr) {
		t, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		if err != nil {
			ierr = err
			return
		}
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB
		t.Cflag |= unix.CS8 | cflag
		t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
		ierr = unix.IoctlSetTermios(int(fd), unix.TCSETS, t)
	})
	if err := errors.Join(cerr, ierr); err != nil {
		return fmt.Errorf("raw mode %s: %w", f.Name(), err)
	}
	return nil
}
