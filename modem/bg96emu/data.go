package bg96emu

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// dataPort is the BG96's modem port (USB interface 3) as a second pty:
// AT commands in command mode, ATD*99***<cid># answered with CONNECT,
// then data mode until the carrier drops (NO CARRIER) on coverage loss,
// CFUN 0 or a reboot. Data-mode bytes are counted and dropped: the
// simulator has no PPP peer.
type dataPort struct {
	master, slave *os.File
	path, link    string
	online        bool
	dials         int
	dataBytes     int64
}

var dialRe = regexp.MustCompile(`^ATD\*99(\*\*\*|#|\*\*\*([0-9]{1,2})#)`)

// StartDataPort opens the data port's pty; DataPath names it. The port
// lives until Close.
func (m *Modem) StartDataPort() error {
	master, slave, err := newPTY()
	if err != nil {
		return fmt.Errorf("sim: data port: %w", err)
	}
	m.mu.Lock()
	m.data = &dataPort{master: master, slave: slave, path: slave.Name()}
	m.mu.Unlock()
	m.wg.Add(1)
	go m.dataLoop(master)
	go func() {
		<-m.ctx.Done()
		_ = master.Close()
		_ = slave.Close()
		m.mu.Lock()
		if m.data != nil && m.data.link != "" {
			_ = os.Remove(m.data.link)
		}
		m.mu.Unlock()
	}()
	return nil
}

// DataPath is the data port's device path ("" before StartDataPort).
func (m *Modem) DataPath() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data == nil {
		return ""
	}
	if m.data.link != "" {
		return m.data.link
	}
	return m.data.path
}

// LinkDataPort keeps a symlink at path to the data port, as the udev
// rule's /dev/ttyBG96-data.
func (m *Modem) LinkDataPort(path string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data == nil {
		return errors.New("sim: no data port")
	}
	if err := repoint(path, m.data.path); err != nil {
		return err
	}
	m.data.link = path
	return nil
}

// DataStats reports the dials answered (CONNECT or not), whether a call
// is up, and the bytes received in data mode.
func (m *Modem) DataStats() (dials int, online bool, bytes int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data == nil {
		return 0, false, 0
	}
	return m.data.dials, m.data.online, m.data.dataBytes
}

func (m *Modem) dataLoop(master *os.File) {
	defer m.wg.Done()
	buf := make([]byte, 512)
	var line []byte
	for {
		n, err := master.Read(buf)
		if n > 0 {
			m.mu.Lock()
			online := m.data.online
			escaped := false
			if online {
				m.data.dataBytes += int64(n)
				// The escape sequence back to command mode; guard times
				// are not simulated.
				if bytes.Contains(buf[:n], []byte("+++")) {
					m.data.online, escaped, line = false, true, nil
				}
			}
			m.mu.Unlock()
			if escaped {
				m.dataWrite("\r\nOK\r\n")
			}
			if !online {
				line = append(line, buf[:n]...)
				for {
					i := bytes.IndexAny(line, "\r\n")
					if i < 0 {
						break
					}
					cmd := strings.TrimSpace(string(line[:i]))
					line = line[i+1:]
					if cmd != "" {
						m.dataWrite(m.dataCommand(cmd))
					}
				}
				if len(line) > 256 {
					line = nil
				}
			}
		}
		if err != nil {
			if !errors.Is(err, os.ErrClosed) && !errors.Is(err, io.EOF) {
				m.log.Debug("sim: data pty read", "err", err)
			}
			return
		}
	}
}

// dataCommand answers one command-mode line of the data port.
func (m *Modem) dataCommand(cmd string) string {
	up := strings.ToUpper(cmd)
	m.mu.Lock()
	defer m.mu.Unlock()
	st := &m.st
	if st.power != powerOn {
		return ""
	}
	if !strings.HasPrefix(up, "AT") {
		return "\r\nERROR\r\n"
	}
	mm := dialRe.FindStringSubmatch(up)
	if mm == nil {
		// ATZ, ATE0, AT&F, AT+CGDCONT... on the modem port: the chat
		// scripts use them only to get an OK.
		if strings.HasPrefix(up, "ATD") {
			return "\r\nERROR\r\n"
		}
		return "\r\nOK\r\n"
	}
	m.data.dials++
	cid := 1
	if mm[2] != "" {
		fmt.Sscanf(mm[2], "%d", &cid)
	}
	pdp, ok := st.nv.pdp[cid]
	switch {
	case !st.registered():
		st.ceer = "No network service"
		return "\r\nNO CARRIER\r\n"
	case !ok:
		st.ceer = "Unknown PDP context"
		return "\r\nNO CARRIER\r\n"
	case m.acceptAPN != "" && !strings.EqualFold(pdp.apn, m.acceptAPN):
		// ESM cause 27 (3GPP TS 24.301): the network refuses the APN.
		st.ceer = "Missing or unknown APN"
		return "\r\nNO CARRIER\r\n"
	}
	m.data.online = true
	return "\r\nCONNECT 150000000\r\n"
}

func (m *Modem) dataWrite(s string) {
	if s == "" {
		return
	}
	m.mu.Lock()
	d := m.data
	m.mu.Unlock()
	if d == nil {
		return
	}
	_, _ = d.master.Write([]byte(s))
}

// dropCarrierLocked ends a call: the network or the radio went away. The
// NO CARRIER goes out once mu is released.
func (m *Modem) dropCarrierLocked(cause string) {
	if m.data == nil || !m.data.online {
		return
	}
	m.data.online = false
	m.st.ceer = cause
	go m.dataWrite("\r\nNO CARRIER\r\n")
}
