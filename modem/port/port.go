// Package port opens the modem's serial port. It is the only package that
// knows about go.bug.st/serial, so the AT engine stays testable over any
// io.ReadWriter.
package port

import (
	"errors"
	"fmt"
	"io"
	"os"

	"go.bug.st/serial"
	"golang.org/x/sys/unix"
)

// ErrBusy is returned when another program holds the port.
var ErrBusy = errors.New("port in use by another program")

// DefaultBaud is the BG96's factory UART rate; on the USB AT port it is
// ignored by the device but still set, so one code path serves both.
const DefaultBaud = 115200

// Open opens a serial port in raw 8N1 mode. The error says what a person
// can do about it: a missing device, a port held by another program (often
// ModemManager) or missing permissions.
func Open(path string, baud int) (io.ReadWriteCloser, error) {
	if baud <= 0 {
		baud = DefaultBaud
	}
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("open %s: no such port (is the modem plugged in, or the simulator running?)", path)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	lock, err := lockPort(path)
	if err != nil {
		return nil, err
	}
	p, err := serial.Open(path, &serial.Mode{BaudRate: baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
	if err != nil {
		lock.Close()
		var pe *serial.PortError
		if errors.As(err, &pe) {
			switch pe.Code() {
			case serial.PortBusy:
				return nil, fmt.Errorf("open %s: %w (e.g. ModemManager?): %v", path, ErrBusy, err)
			case serial.PermissionDenied:
				return nil, fmt.Errorf("open %s: permission denied (is the user in the dialout group?): %w", path, err)
			}
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// Whatever the modem printed before we opened the port (URCs nobody
	// read, a late OK to a command of the port's previous owner) would be
	// taken for the answer to our first command: drop it. Best effort: a
	// driver that cannot flush still works, only without this guard.
	_ = p.ResetInputBuffer()
	return &lockedPort{Port: p, lock: lock}, nil
}

// lockPort takes an exclusive flock on the device. Two programs reading one
// serial port split its bytes between them: a PDU cut in half is an SMS
// lost. TIOCEXCL, which the serial driver sets, does not stop root, which
// the agent and the bench tools often are; flock does.
func lockPort(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("open %s: %w (the cellagent service, or another cellagent command?); stop it first", path, ErrBusy)
		}
		return nil, fmt.Errorf("open %s: lock: %w", path, err)
	}
	return f, nil
}

// lockedPort holds the lock for as long as the port is open.
type lockedPort struct {
	serial.Port
	lock *os.File
}

func (p *lockedPort) Close() error {
	err := p.Port.Close()
	p.lock.Close()
	return err
}
