package bearer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"cellagent/modem/clock"
	"cellagent/modem/port"
)

// PPP is how the bearer runs pppd.
type PPP struct {
	// PPPD is the pppd binary (Debian's /usr/sbin/pppd).
	PPPD string
	// Port is the modem's data port; CID the PDP context dialled.
	Port string
	CID  int
	// Unit is N of the pppN interface pppd creates.
	Unit int
	// Username and Password, when set, go to pppd in an options file
	// readable only by the agent, never on its command line.
	Username, Password string
	// ConnectTimeout bounds the wait for CONNECT.
	ConnectTimeout time.Duration
	// RuntimeDir holds the options file; empty: os.TempDir().
	RuntimeDir string
}

// Args are pppd's arguments. The agent has dialled already, so pppd takes
// the connected tty on its standard input (no device, no connect
// script): the dial's answer is the agent's to read, not hidden in a
// chat exit code.
func (p PPP) Args(optionsFile string) []string {
	args := []string{
		"nodetach",                   // the agent supervises it; its exit is the news
		"unit", strconv.Itoa(p.Unit), // a stable interface name: pppN
		"local",         // the USB data port has no carrier-detect line to watch
		"noauth",        // the network authenticates us, not we it
		"noipdefault",   // the network assigns the address
		"usepeerdns",    // and the DNS servers, which pppd then logs
		"defaultroute",  // a cellular-only gateway routes through the bearer
		"noccp", "novj", // cellular links gain nothing from compression
		"lcp-echo-interval", "30", "lcp-echo-failure", "4", // a dead link ends pppd within ~2 min
		"maxfail", "1", // the agent redials, with its back-off
	}
	if optionsFile != "" {
		args = append(args, "file", optionsFile)
	}
	return args
}

// optionsFile writes user and password for pppd into a file only the
// agent may read, so they never show in ps or the journal.
func (p PPP) optionsFile() (string, func(), error) {
	if p.Username == "" {
		return "", func() {}, nil
	}
	dir := p.RuntimeDir
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.CreateTemp(dir, "ppp-options-*")
	if err != nil {
		return "", nil, fmt.Errorf("bearer: pppd options: %w", err)
	}
	_ = f.Chmod(0o600)
	_, err = fmt.Fprintf(f, "user %s\npassword %s\n", quoteOption(p.Username), quoteOption(p.Password))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", nil, fmt.Errorf("bearer: pppd options: %w", err)
	}
	return f.Name(), func() { _ = os.Remove(f.Name()) }, nil
}

// quoteOption quotes a word for a pppd options file.
func quoteOption(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// openData opens the data port as a raw tty. O_NONBLOCK lets the runtime
// poller honour read deadlines during the dial.
func openData(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open the data port: %w", err)
	}
	// HUPCL: closing the port drops DTR, which ends the call on a real
	// modem; CLOCAL: there is no carrier line to wait for on USB.
	if err := port.MakeRaw(f, unix.CLOCAL|unix.CREAD|unix.HUPCL); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// DialError is a dial the modem refused.
type DialError struct {
	Result string // NO CARRIER, ERROR, BUSY, or "no answer"
}

func (e *DialError) Error() string { return "dial: " + e.Result }

// chat sends cmd and reads lines until one of finals, byte by byte so
// that nothing after CONNECT (the peer's first PPP frames) is consumed.
func chat(f *os.File, cmd string, timeout time.Duration, finals ...string) (string, error) {
	if _, err := f.Write([]byte(cmd + "\r")); err != nil {
		return "", fmt.Errorf("write %s: %w", cmd, err)
	}
	deadline := time.Now().Add(timeout)
	_ = f.SetReadDeadline(deadline)
	defer f.SetReadDeadline(time.Time{})
	var line []byte
	b := make([]byte, 1)
	for {
		if _, err := f.Read(b); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return "", &DialError{Result: "no answer to " + cmd + " within " + timeout.String()}
			}
			return "", fmt.Errorf("read: %w", err)
		}
		if b[0] != '\r' && b[0] != '\n' {
			if len(line) < 256 {
				line = append(line, b[0])
			}
			continue
		}
		l := strings.TrimSpace(string(line))
		line = line[:0]
		for _, fin := range finals {
			if strings.HasPrefix(l, fin) {
				return l, nil
			}
		}
	}
}

// dial gets the data port from command mode to CONNECT: the modem may
// still be in a call left by a crashed pppd, so a silent AT is answered
// with the escape sequence and ATH first.
func dial(ctx context.Context, f *os.File, cid int, timeout time.Duration) error {
	stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Now()) })
	defer stop()
	finals := []string{"OK", "ERROR", "+CME ERROR"}
	if _, err := chat(f, "AT", time.Second, finals...); err != nil {
		var de *DialError
		if !errors.As(err, &de) {
			return err
		}
		// The guard times around +++ (1 s by default on the BG96). Once
		// +++ is out, the escape is finished with ATH whatever the
		// context says: stopping between the two would leave the old
		// call up for the next dial to send ATD into.
		if err := clock.Sleep(ctx, time.Second); err != nil {
			return err
		}
		_, _ = f.Write([]byte("+++"))
		time.Sleep(time.Second)
		if _, err := chat(f, "ATH", 5*time.Second, finals...); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	res, err := chat(f, fmt.Sprintf("ATD*99***%d#", cid), timeout, "CONNECT", "NO CARRIER", "ERROR", "+CME ERROR", "BUSY", "NO ANSWER", "NO DIALTONE")
	if err != nil {
		return err
	}
	if !strings.HasPrefix(res, "CONNECT") {
		return &DialError{Result: res}
	}
	return nil
}

// pppd's exit statuses (pppd(8), EXIT STATUS).
var pppdExit = map[int]string{
	1: "fatal error", 2: "bad options", 3: "not setuid root", 4: "the kernel lacks PPP support",
	5: "terminated by a signal", 6: "serial port lock failed", 7: "serial port open failed",
	8: "connect script failed", 10: "PPP negotiation failed", 11: "peer failed to authenticate",
	12: "link idle", 13: "connect time limit", 15: "peer not responding to LCP echoes",
	16: "modem hung up", 19: "authentication failed (wrong APN user or password)",
}

// fatalExit are statuses no redial fixes; the bearer stays blocked until
// the configuration (or the gateway) changes.
var fatalExit = map[int]bool{2: true, 3: true, 4: true, 19: true}

// pppLog is what pppd's log lines told about the session.
type pppLog struct {
	mu        sync.Mutex
	local     string
	dns       []string
	lastError string
}

var (
	reLocal = regexp.MustCompile(`^local\s+IP address\s+(\S+)`)
	reDNS   = regexp.MustCompile(`^(primary|secondary)\s+DNS address\s+(\S+)`)
)

func (l *pppLog) read(r io.Reader, log func(string)) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		l.mu.Lock()
		switch {
		case reLocal.MatchString(line):
			if a, err := netip.ParseAddr(reLocal.FindStringSubmatch(line)[1]); err == nil {
				l.local = a.String()
			}
		case reDNS.MatchString(line):
			// Only addresses: the status shows them as DNS servers.
			if a, err := netip.ParseAddr(reDNS.FindStringSubmatch(line)[2]); err == nil && len(l.dns) < 4 {
				l.dns = append(l.dns, a.String())
			}
		case strings.Contains(line, "Couldn't") || strings.Contains(line, "lacks kernel support") ||
			strings.Contains(line, "failed") || strings.Contains(line, "rror"):
			l.lastError = line
		}
		l.mu.Unlock()
		log(line)
	}
}

func (l *pppLog) snapshot() (dns []string, lastError string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.dns...), l.lastError
}

// describeExit names pppd's exit for the operator.
func describeExit(err error, lastLine string) (why string, code int) {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		if err == nil {
			return "pppd exited", 0
		}
		return "pppd: " + err.Error(), -1
	}
	code = ee.ExitCode()
	why = fmt.Sprintf("pppd exit %d", code)
	if code < 0 {
		why = "pppd: " + ee.String()
	}
	if t, ok := pppdExit[code]; ok {
		why += ": " + t
	}
	if lastLine != "" {
		why += " (" + lastLine + ")"
	}
	return why, code
}
