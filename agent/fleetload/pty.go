package fleetload

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// openPTY opens a simulated modem's pty for its agent in place of
// port.Open. go.bug.st/serial waits for input with select(2), whose
// fd_set holds descriptors below 1024 only: past about 120 gateways in
// one process a port's descriptor is higher and its Read panics (index
// out of range in unix.FdSet.Set), and every port blocks an OS thread.
// A non-blocking file goes through the runtime's poller instead. The
// simulator has made the line raw and keeps it so (it holds the slave
// open), so only the flush of what was printed before is left to do.
func openPTY(path string, _ int) (io.ReadWriteCloser, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	rc, err := f.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) { _ = unix.IoctlSetInt(int(fd), unix.TCFLSH, unix.TCIFLUSH) })
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return f, nil
}
