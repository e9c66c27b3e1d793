package bg96emu

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// faults is the injected misbehaviour; every field is cleared by
// ClearFaults. Command names are normalised by faultKey.
type faults struct {
	silent     bool
	delay      map[string]time.Duration
	cme        map[string]int
	cms        map[string]int
	truncate   bool
	stopArmed  bool
	stopLeft   int
	cmgrOnlyOK bool
	urcInside  bool
	deferred   []string
}

// faultKey turns "AT+csq", "+CSQ" or "csq" into the "+CSQ" the command
// parser produces; one-letter names stay basic commands ("E", "I").
func faultKey(cmd string) string {
	k := strings.ToUpper(strings.TrimSpace(cmd))
	k = strings.TrimPrefix(k, "AT")
	if len(k) > 1 && k[0] != '+' && k[0] != '&' {
		k = "+" + k
	}
	return k
}

// faultLocked returns the forced final result for a command, if any.
func (m *Modem) faultLocked(name string) (string, bool) {
	if code, ok := m.flt.cme[name]; ok {
		return m.cmeLocked(code), true
	}
	if code, ok := m.flt.cms[name]; ok {
		return m.cmsLocked(code), true
	}
	return "", false
}

// Silence makes the modem deaf and mute (no echo, no answers, no URCs)
// while on, like a modem whose firmware hangs. Input received meanwhile is
// discarded.
func (m *Modem) Silence(on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.flt.silent = on
	if !on {
		m.flt.stopArmed = false
	}
}

// DelayCommand holds the answer to every cmd (e.g. "+COPS") for d after
// the line has arrived; the echo still comes at once. d <= 0 removes it.
func (m *Modem) DelayCommand(cmd string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.flt.delay == nil {
		m.flt.delay = map[string]time.Duration{}
	}
	if d <= 0 {
		delete(m.flt.delay, faultKey(cmd))
		return
	}
	m.flt.delay[faultKey(cmd)] = d
}

// CMEErrorOn makes every cmd (e.g. "+CSQ") answer +CME ERROR: code,
// formatted per AT+CMEE (ERROR, the number, or the text), until cleared.
func (m *Modem) CMEErrorOn(cmd string, code int) error {
	if code < 0 || code > 999 {
		return fmt.Errorf("sim: CME error code %d out of range 0-999", code)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.flt.cme == nil {
		m.flt.cme = map[string]int{}
	}
	m.flt.cme[faultKey(cmd)] = code
	return nil
}

// CMSErrorOn is CMEErrorOn for SMS commands: +CMS ERROR: code.
func (m *Modem) CMSErrorOn(cmd string, code int) error {
	if code < 0 || code > 999 {
		return fmt.Errorf("sim: CMS error code %d out of range 0-999", code)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.flt.cms == nil {
		m.flt.cms = map[string]int{}
	}
	m.flt.cms[faultKey(cmd)] = code
	return nil
}

// Garbage writes b to the line now, raw, between whole lines of other
// output.
func (m *Modem) Garbage(b []byte) {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	m.writeRawLocked(b)
}

// TruncateNext cuts the next answer after half of its first line (the
// first info line, else the final) and drops the rest, CRLF included.
func (m *Modem) TruncateNext() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.flt.truncate = true
}

// StopAfter answers n more command lines, then the modem goes silent as
// with Silence(true).
func (m *Modem) StopAfter(n int) error {
	if n < 0 {
		return fmt.Errorf("sim: StopAfter(%d): n must not be negative", n)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.flt.stopArmed, m.flt.stopLeft = true, n
	return nil
}

// CMGROnlyOK reproduces the EC25 "SR memory" quirk (asterisk-chan-quectel
// PR #75: status reports stored in "SR" but announced as "SM"): every
// AT+CMGR answers a bare OK, whatever the slot holds.
func (m *Modem) CMGROnlyOK(on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.flt.cmgrOnlyOK = on
}

// URCsInsideResponse, while on, holds every URC back and prints it inside
// the next command answer, after the info lines and before the final
// result, the hardest place for a host to route it. Turning it off
// releases what is held.
func (m *Modem) URCsInsideResponse(on bool) {
	m.mu.Lock()
	m.flt.urcInside = on
	var held []string
	if !on {
		held, m.flt.deferred = m.flt.deferred, nil
	}
	m.mu.Unlock()
	m.emit(held...)
}

// HangUp closes the pty master, as a USB modem dropping off the bus: the
// host's reads fail. After d a new pty appears (a new slave path) and the
// link, if any, is re-pointed. The modem stays powered: storage,
// registration and settings survive.
func (m *Modem) HangUp(d time.Duration) error {
	if m.ctx == nil {
		return errors.New("sim: HangUp before Start")
	}
	m.wmu.Lock()
	m.closePTYLocked()
	// The device node is gone while the modem is off the bus (udev removes
	// the link too): the freed pty number may go to another program, and a
	// host reopening the old path must not end up talking to it.
	m.path = ""
	if m.link != "" {
		_ = os.Remove(m.link)
	}
	m.wmu.Unlock()
	m.log.Info("sim: hung up", "for", d)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if !m.sleep(d) {
			return
		}
		if err := m.openPTY(); err != nil {
			m.log.Error("sim: re-open pty after hang-up", "err", err)
		}
	}()
	return nil
}

// ClearFaults removes every injected fault; held URCs are released.
func (m *Modem) ClearFaults() {
	m.mu.Lock()
	held := m.flt.deferred
	m.flt = faults{}
	m.mu.Unlock()
	m.emit(held...)
}
