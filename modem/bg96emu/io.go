package bg96emu

import (
	"strings"
	"time"
)

const (
	ctrlZ = 0x1A
	esc   = 0x1B
	// maxLine bounds a command line; BG96 documents a 4 KiB input buffer
	// but nothing legitimate comes close to this.
	maxLine = 2048
)

// lineReader splits the host's bytes into command lines and, while an SMS
// prompt is open, collects the PDU up to Ctrl-Z or ESC.
type lineReader struct {
	m        *Modem
	buf      []byte
	overflow bool
	lastCR   bool
}

func newLineReader(m *Modem) *lineReader { return &lineReader{m: m} }

// feed consumes one chunk read from the pty; due is when its last byte has
// crossed the simulated UART.
func (lr *lineReader) feed(b []byte, due time.Time) {
	m := lr.m
	var echo []byte
	flushEcho := func() {
		if len(echo) > 0 {
			m.wmu.Lock()
			m.writeRawLocked(echo)
			m.wmu.Unlock()
			echo = echo[:0]
		}
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		m.mu.Lock()
		deaf := m.st.power != powerOn || m.flt.silent
		inPrompt := m.st.prompt != nil
		echoOn := m.st.echo && !deaf
		m.mu.Unlock()
		if deaf {
			lr.buf, lr.overflow, lr.lastCR = lr.buf[:0], false, false
			continue
		}
		if inPrompt {
			switch c {
			case ctrlZ, esc:
				flushEcho()
				m.sleepUntil(due)
				pdu := string(lr.buf)
				lr.buf, lr.overflow = lr.buf[:0], false
				m.finishPrompt(pdu, c == esc)
				continue
			}
			if echoOn {
				echo = append(echo, c)
			}
			lr.add(c)
			continue
		}
		if echoOn {
			echo = append(echo, c)
		}
		switch {
		case c == '\r', c == '\n' && !lr.lastCR:
			lr.lastCR = c == '\r'
			if lr.lastCR && i+1 < len(b) && b[i+1] == '\n' {
				// A host ending lines with CRLF sends both at once; echo
				// the LF before answering, as the modem has it before it
				// has finished parsing.
				if echoOn {
					echo = append(echo, '\n')
				}
				i++
				lr.lastCR = false
			}
			line, over := string(lr.buf), lr.overflow
			lr.buf, lr.overflow = lr.buf[:0], false
			if strings.TrimSpace(line) == "" && !over {
				continue
			}
			flushEcho()
			m.sleepUntil(due)
			m.handleLine(line, over)
		case c == '\n':
			lr.lastCR = false
		default:
			lr.lastCR = false
			lr.add(c)
		}
	}
	flushEcho()
}

func (lr *lineReader) add(c byte) {
	if len(lr.buf) >= maxLine {
		lr.overflow = true
		return
	}
	lr.buf = append(lr.buf, c)
}

// resp is the answer to one command line.
type resp struct {
	info   []string
	final  string // "" means OK
	prompt bool   // answer with the SMS prompt instead of a final
	then   func() // runs after the answer is on the line
}

func errResp(final string) resp { return resp{final: final} }

// emit writes URCs, or holds them for the next answer while the
// "URC inside response" fault is on. Nothing is printed while the modem is
// off, booting or silenced.
func (m *Modem) emit(urcs ...string) {
	if len(urcs) == 0 {
		return
	}
	m.mu.Lock()
	if m.flt.urcInside {
		m.flt.deferred = append(m.flt.deferred, urcs...)
		m.mu.Unlock()
		return
	}
	mute := m.flt.silent
	m.mu.Unlock()
	if mute {
		return
	}
	m.wmu.Lock()
	defer m.wmu.Unlock()
	for _, u := range urcs {
		m.writeRawLocked([]byte("\r\n" + u + "\r\n"))
	}
}

// writeResp puts an answer on the line in ATV1 shape:
// <CR><LF>info<CR><LF>[info<CR><LF>...]<CR><LF>final<CR><LF>.
func (m *Modem) writeResp(r resp) {
	m.mu.Lock()
	truncate := m.flt.truncate
	m.flt.truncate = false
	var held []string
	if m.flt.urcInside {
		held, m.flt.deferred = m.flt.deferred, nil
	}
	m.mu.Unlock()

	final := r.final
	if final == "" {
		final = "OK"
	}
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if truncate {
		first := final
		if len(r.info) > 0 {
			first = r.info[0]
		}
		m.writeRawLocked([]byte("\r\n" + first[:len(first)/2]))
		return
	}
	if len(r.info) > 0 {
		m.writeRawLocked([]byte("\r\n" + strings.Join(r.info, "\r\n") + "\r\n"))
	}
	for _, u := range held {
		m.writeRawLocked([]byte("\r\n" + u + "\r\n"))
	}
	if r.prompt {
		m.writeRawLocked([]byte("\r\n> "))
		return
	}
	m.writeRawLocked([]byte("\r\n" + final + "\r\n"))
}
