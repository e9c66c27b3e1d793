package bg96emu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/creack/pty"
	"github.com/warthog618/sms"
	"golang.org/x/sys/unix"

	"cellagent/modem/port"
)

// DefaultBaud is the line speed used when Config.Baud is zero.
const DefaultBaud = 115200

// NoPacing as Config.Baud turns UART pacing off: bytes cross the line as
// fast as the pty moves them.
const NoPacing = -1

// Config describes the simulated modem. The zero value is a registered
// BG96 on CAT-M1 with a German test SIM; every field has a BG96-like default.
type Config struct {
	IMEI     string // 15 digits
	ICCID    string // 19-20 digits, may end in F as AT+QCCID prints it
	IMSI     string
	Firmware string // AT+CGMR answer, e.g. BG96MAR02A07M1G
	Operator string // long alphanumeric name, e.g. Telekom.de
	MCCMNC   string // numeric operator, e.g. 26201
	SMSC     string // initial AT+CSCA number, international format

	// Baud paces both directions like an 8N1 UART (10 bits per byte):
	// 0 means DefaultBaud, NoPacing turns pacing off.
	Baud int
	// StorageSize is the number of SM slots (default 10).
	StorageSize int

	// BootDelay is how long the modem ignores input after a reset before it
	// prints RDY (default 3s; tests use a few hundred milliseconds).
	BootDelay time.Duration
	// SIMBusy is how long after the start-up URCs the SIM commands
	// (AT+CPIN?, AT+QCCID, AT+CIMI, AT+CSCA, the SMS storage) still answer
	// +CME ERROR: 14, SIM busy, as a BG96 does while its SIM initialises
	// (default 0: ready with the URCs).
	SIMBusy time.Duration
	// RegisterDelay is how long the radio takes to (re)register after
	// AT+CFUN=1, a reboot or a re-attach (default 2s).
	RegisterDelay time.Duration
	// ReportDelay is how long the network takes to send a status report for
	// a submitted SMS that asked for one (default 1s).
	ReportDelay time.Duration

	// OnSubmit, when set, is called with every SMS-SUBMIT the modem
	// accepted with AT+CMGS, after the +CMGS answer and without locks
	// held, so an operator-platform simulator can forward MO messages.
	// It runs on the modem's input goroutine: hand slow work off.
	OnSubmit func(SentMessage)

	// StartUnregistered starts the simulated network without coverage:
	// no registration and no signal until SetRegistration/SetSignal.
	StartUnregistered bool

	Logger *slog.Logger
}

func (c *Config) applyDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.IMEI, "866425031234567")
	def(&c.ICCID, "89882280666012345678")
	def(&c.IMSI, "901405100012345")
	def(&c.Firmware, "BG96MAR02A07M1G")
	def(&c.Operator, "Telekom.de")
	def(&c.MCCMNC, "26201")
	def(&c.SMSC, "+882285000016860")
	if c.Baud == 0 {
		c.Baud = DefaultBaud
	}
	if c.StorageSize <= 0 {
		c.StorageSize = 10
	}
	if c.BootDelay <= 0 {
		c.BootDelay = 3 * time.Second
	}
	if c.RegisterDelay <= 0 {
		c.RegisterDelay = 2 * time.Second
	}
	if c.ReportDelay <= 0 {
		c.ReportDelay = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Stats counts traffic on the simulated line.
type Stats struct {
	BytesIn  int64 // bytes received from the host
	BytesOut int64 // bytes written to the host
	Commands int64 // command lines answered (or deliberately ignored by a fault)
	// Processed counts bytes the modem has finished acting on (answered,
	// or ignored while deaf), so tests can tell "ignored" from "not yet read".
	Processed int64
}

// Modem is one simulated BG96. Create it with New, then Start it.
type Modem struct {
	cfg Config
	log *slog.Logger

	mu    sync.Mutex // guards the modem state below and in state.go
	st    state
	flt   faults
	tmrs  map[*time.Timer]struct{}
	epoch int // bumped by every power cycle so stale timers do nothing

	wmu    sync.Mutex // serialises output; guards the pty files and pacing
	master *os.File
	slave  *os.File
	path   string
	link   string
	txFree time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool

	bytesIn, bytesOut, commands, processed atomic.Int64

	// nvWrites counts NVRAM writes per setting; acceptAPN is the only
	// APN the network activates ("" any). Both under mu.
	nvWrites  map[string]int
	acceptAPN string
	data      *dataPort
	// netTimeOffset is how far the network's clock runs ahead of ours.
	netTimeOffset time.Duration

	// concatRef numbers DeliverText's multi-part messages, as an SMSC
	// would, so two long messages from one originator stay apart.
	concatRef sms.Counter
}

// New returns a modem with cfg's gaps filled by defaults. It is powered on,
// booted and (unless cfg.StartUnregistered) registered, but serves nothing
// until Start.
func New(cfg Config) *Modem {
	cfg.applyDefaults()
	m := &Modem{cfg: cfg, log: cfg.Logger, tmrs: map[*time.Timer]struct{}{}}
	m.st = newState(&cfg)
	return m
}

// Start creates the pseudo-terminal and serves it in the background until
// ctx is done or Close is called.
func (m *Modem) Start(ctx context.Context) error {
	if m.ctx != nil {
		return errors.New("sim: modem already started")
	}
	m.ctx, m.cancel = context.WithCancel(ctx)
	if err := m.openPTY(); err != nil {
		m.cancel()
		return err
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		<-m.ctx.Done()
		m.shutdown()
	}()
	return nil
}

// Path is the device path hosts should open: the link if one is set,
// otherwise the current pty slave.
func (m *Modem) Path() string {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if m.link != "" {
		return m.link
	}
	return m.path
}

// ICCID is the SIM's ICCID as the operator's platform knows it: the
// configured value without the filler F that AT+QCCID prints on 19-digit
// ICCIDs, so a platform simulator can register the modem under the same
// key its API uses.
func (m *Modem) ICCID() string {
	return strings.TrimRight(m.cfg.ICCID, "Ff")
}

// PTY is the current pty slave path, whatever the link says.
func (m *Modem) PTY() string {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	return m.path
}

// Link maintains a symlink at path pointing to the current pty, re-pointed
// whenever a hang-up brings up a new one (like udev's /dev/ttyBG96 rules).
// The link is removed by Close.
func (m *Modem) Link(path string) error {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	m.link = path
	if m.path == "" {
		return nil
	}
	return repoint(path, m.path)
}

// repoint swaps the symlink atomically so a host never sees it missing.
func repoint(link, target string) error {
	tmp := filepath.Join(filepath.Dir(link), fmt.Sprintf(".%s.%d", filepath.Base(link), os.Getpid()))
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("sim: link %s: %w", link, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("sim: link %s: %w", link, err)
	}
	return nil
}

// Close stops serving, closes the pty and removes the link.
func (m *Modem) Close() error {
	if m.cancel == nil {
		return nil
	}
	m.cancel()
	m.wg.Wait()
	return nil
}

func (m *Modem) shutdown() {
	m.closed.Store(true)
	m.mu.Lock()
	for t := range m.tmrs {
		t.Stop()
	}
	m.tmrs = map[*time.Timer]struct{}{}
	m.mu.Unlock()
	m.wmu.Lock()
	m.closePTYLocked()
	if m.link != "" {
		_ = os.Remove(m.link)
	}
	m.wmu.Unlock()
}

// Stats reports the traffic so far.
func (m *Modem) Stats() Stats {
	return Stats{BytesIn: m.bytesIn.Load(), BytesOut: m.bytesOut.Load(), Commands: m.commands.Load(), Processed: m.processed.Load()}
}

// newPTY opens a pty pair: the master non-blocking and close-on-exec,
// the slave raw.
func newPTY() (master, slave *os.File, err error) {
	master, slave, err = pty.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("sim: open pty: %w", err)
	}
	// pty.Open leaves the master in blocking mode (it calls Fd()), so a
	// Read would survive Close. A non-blocking duplicate goes through the
	// runtime poller: Close interrupts Read and write deadlines work.
	// Close-on-exec, or every process started later (a broker in a test)
	// would hold the master open and a hang-up would never reach the host.
	fd, err := unix.FcntlInt(master.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	_ = master.Close()
	if err != nil {
		_ = slave.Close()
		return nil, nil, fmt.Errorf("sim: dup pty master: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		_ = slave.Close()
		return nil, nil, fmt.Errorf("sim: pty master non-blocking: %w", err)
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := makeRaw(slave); err != nil {
		_ = master.Close()
		_ = slave.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

// openPTY creates a new pty pair and starts its reader.
func (m *Modem) openPTY() error {
	master, slave, err := newPTY()
	if err != nil {
		return err
	}
	m.wmu.Lock()
	if m.closed.Load() {
		m.wmu.Unlock()
		_ = master.Close()
		_ = slave.Close()
		return errors.New("sim: modem closed")
	}
	m.master, m.slave, m.path = master, slave, slave.Name()
	link := m.link
	m.wmu.Unlock()
	if link != "" {
		if err := repoint(link, slave.Name()); err != nil {
			m.log.Warn("sim: re-point link", "err", err)
		}
	}
	m.log.Info("sim: pty ready", "path", slave.Name())
	m.wg.Add(1)
	go m.readLoop(master)
	return nil
}

// makeRaw switches the line discipline off: the simulated modem does its
// own echo, and CR must reach it unchanged. We keep our slave fd open for
// the pty's lifetime because Linux resets a pty's termios when the last
// slave fd closes, and so that the master does not read EIO between hosts.
func makeRaw(slave *os.File) error {
	if err := port.MakeRaw(slave, 0); err != nil {
		return fmt.Errorf("sim: pty: %w", err)
	}
	return nil
}

func (m *Modem) closePTYLocked() {
	if m.master != nil {
		_ = m.master.Close()
		_ = m.slave.Close()
		m.master, m.slave = nil, nil
	}
}

// readLoop feeds bytes from one pty master to the command interpreter until
// that pty is closed (hang-up or shutdown).
func (m *Modem) readLoop(master *os.File) {
	defer m.wg.Done()
	in := newLineReader(m)
	buf := make([]byte, 1024)
	var rxFree time.Time
	for {
		n, err := master.Read(buf)
		if n > 0 {
			m.bytesIn.Add(int64(n))
			// A command cannot be acted on before its bytes have crossed
			// the UART, so the receive side keeps its own line clock.
			now := time.Now()
			rxFree = later(rxFree, now).Add(m.wireTime(n))
			in.feed(buf[:n], rxFree)
			m.processed.Add(int64(n))
		}
		if err != nil {
			if !errors.Is(err, os.ErrClosed) && !errors.Is(err, io.EOF) {
				m.log.Debug("sim: pty read", "err", err)
			}
			return
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (m *Modem) wireTime(n int) time.Duration {
	if m.cfg.Baud <= 0 {
		return 0
	}
	return time.Duration(n) * 10 * time.Second / time.Duration(m.cfg.Baud)
}

// timerSlack is how late a Go timer may fire on a loaded or virtualised
// host (about 0.8 ms was measured on the CI machines).
const timerSlack = 1500 * time.Microsecond

// sleepUntil waits for t (or shutdown). A timer alone would add its slack
// to every paced write, which on a 2.4 ms AT round trip is a third of the
// line time, so the last stretch is spun with yields. The spin lasts at most
// timerSlack per write, and only while bytes are being paced.
func (m *Modem) sleepUntil(t time.Time) {
	if d := time.Until(t) - timerSlack; d > 0 {
		if !m.sleep(d) {
			return
		}
	}
	for time.Now().Before(t) {
		runtime.Gosched()
	}
}

// sleep waits d or until shutdown, reporting false on shutdown.
func (m *Modem) sleep(d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-m.ctx.Done():
		return false
	}
}

// writeRaw puts b on the line. The caller holds wmu, so output from
// command answers and asynchronous URCs never interleaves mid-write.
func (m *Modem) writeRawLocked(b []byte) {
	if len(b) == 0 || m.master == nil || m.closed.Load() {
		return
	}
	if m.cfg.Baud > 0 {
		m.txFree = later(m.txFree, time.Now()).Add(m.wireTime(len(b)))
		m.sleepUntil(m.txFree)
	}
	// Nobody may be reading the slave; a real UART would drop the bytes,
	// so a stalled write is abandoned and the slave's queue flushed rather
	// than blocking the modem forever.
	_ = m.master.SetWriteDeadline(time.Now().Add(time.Second))
	n, err := m.master.Write(b)
	m.bytesOut.Add(int64(n))
	if err != nil {
		m.log.Debug("sim: pty write dropped", "err", err, "bytes", len(b)-n)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			m.flushSlaveLocked()
		}
	}
}

func (m *Modem) flushSlaveLocked() {
	rc, err := m.slave.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) { _ = unix.IoctlSetInt(int(fd), unix.TCFLSH, unix.TCIFLUSH) })
}

// after runs f after d unless the modem is closed or power-cycled first.
// f runs without locks held.
func (m *Modem) after(d time.Duration, f func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.afterLocked(d, f)
}

func (m *Modem) afterLocked(d time.Duration, f func()) {
	if m.closed.Load() {
		return
	}
	epoch := m.epoch
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		m.mu.Lock()
		_, live := m.tmrs[t]
		delete(m.tmrs, t)
		stale := epoch != m.epoch
		m.mu.Unlock()
		if live && !stale && !m.closed.Load() {
			f()
		}
	})
	m.tmrs[t] = struct{}{}
}
