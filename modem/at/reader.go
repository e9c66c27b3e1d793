package at

import (
	"fmt"
	"strings"
)

type urc struct {
	ind   *indication // nil for the unhandled handler
	h     Handler
	lines []string
}

func (a *AT) readLoop() {
	defer close(a.urcs)
	var sp splitter
	buf := make([]byte, 1024)
	for {
		n, err := a.rw.Read(buf)
		if n > 0 {
			dropped := sp.dropped
			sp.feed(buf[:n], a.route)
			if sp.dropped != dropped {
				a.cfg.log.Warn("AT line too long, dropped", "limit", MaxLineLength)
			}
			a.mu.Lock()
			esc := a.cancelPrompt
			a.cancelPrompt = false
			a.mu.Unlock()
			if esc {
				a.cfg.log.Warn("AT SMS prompt with no command waiting for it, sent ESC")
				_ = a.write("\x1b")
			}
		}
		if err != nil {
			a.shutdown(fmt.Errorf("read: %w", err), true)
			return
		}
	}
}

func (a *AT) dispatchLoop() {
	for u := range a.urcs {
		if u.ind != nil {
			// The handler may have been removed while its URC was queued.
			a.mu.Lock()
			removed := u.ind.removed
			a.mu.Unlock()
			if removed {
				continue
			}
		}
		u.h(u.lines)
	}
}

// route decides where one token goes. It runs on the reader goroutine and
// never blocks: a full URC queue drops the URC with a warning.
func (a *AT) route(t token) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.cur
	if t.kind == tokPrompt {
		if r != nil && r.prompt != nil {
			select {
			case r.prompt <- struct{}{}:
			default:
			}
			return
		}
		// The late prompt of an SMS command that timed out before it came:
		// the modem now waits for a body. Cancel it, but only while no
		// ordinary command runs, since a byte can abort a running command
		// (AT+COPS=?); during the fence the modem has eaten the fence as
		// text already, and the fence's time limit covers that.
		if r == nil || r.fence != "" {
			a.cancelPrompt = true
			return
		}
		a.cfg.log.Debug("AT prompt with no SMS command waiting, ignored")
		return
	}
	line := t.line
	if a.trailingWant > 0 {
		if ok, _ := finalResult(line); !ok {
			a.trailing = append(a.trailing, line)
			a.trailingWant--
			if a.trailingWant == 0 {
				a.emit(a.trailing)
			}
			return
		}
		// A final result where a URC's second line should be means that
		// line was lost; hand over what arrived and let the handler judge.
		a.cfg.log.Warn("AT multi-line URC cut short by a final result", "urc", a.trailing[0])
		a.trailingWant = 0
		a.emit(a.trailing)
	}
	if r != nil && a.claim(r, line) {
		return
	}
	if r == nil && a.settling && (isFinalLine(line) || strings.HasPrefix(line, fencePrefix)) {
		a.unsettled = true
		a.cfg.log.Debug("AT late answer after a fence, dropped", "line", line)
		return
	}
	if r == nil && isStrayFinal(line) {
		// The late final ends the late answer, so lines with its prefix are
		// URCs again. It proves nothing about commands still unanswered
		// behind it, though: only a settled fence puts the line in step.
		a.stale = nil
		a.cfg.log.Debug("AT final result with no command waiting, dropped", "line", line)
		return
	}
	if a.dirty && (hasAnyPrefix(line, a.stale) || strings.HasPrefix(line, fencePrefix)) {
		a.cfg.log.Debug("AT late answer to a timed-out command, dropped", "line", line)
		return
	}
	if n := a.trailingFor(line); n > 0 {
		a.trailing = []string{line}
		a.trailingWant = n
		return
	}
	a.emit([]string{line})
}

// claim reports whether line belongs to the running command r, and takes it.
func (a *AT) claim(r *request, line string) bool {
	if r.fence != "" && !r.fenceSeen {
		// Everything before the fence's own answer is a late answer to the
		// command that timed out.
		switch {
		case hasAnyPrefix(line, []string{r.fence}):
			r.fenceSeen = true
		case isFinalLine(line):
			a.cfg.log.Debug("AT late final result discarded", "line", line)
		case isExtended(line) || a.isBareURC(line):
			return false
		default:
			a.cfg.log.Debug("AT late response line discarded", "line", line)
		}
		return true
	}
	if !r.echoSeen && isEcho(line, r.echo) && (len(r.info) == 0 || strings.EqualFold(line, r.echo)) {
		r.echoSeen = true
		// A modem echoes a command as it reads it, so whatever came before
		// the echo was printed before the modem had the command: a URC with
		// the command's own prefix ("+CREG: 0" just before AT+CREG?'s echo)
		// goes to its handlers rather than into the answer.
		early := r.info
		r.info = nil
		for _, l := range early {
			a.emit([]string{l})
		}
		return true
	}
	if r.body != nil && line == *r.body {
		return true
	}
	if ok, err := finalResult(line); ok {
		if r.fence != "" {
			// Settling starts with the very next line, which may be in the
			// same read as this one.
			a.settling, a.unsettled = true, false
		}
		r.finish(err)
		a.cur = nil
		return true
	}
	switch {
	case hasAnyPrefix(line, r.prefixes):
	case isExtended(line) || a.isBareURC(line):
		return false
	}
	r.info = append(r.info, line)
	return true
}

// trailingFor says how many lines follow line as part of the same URC.
func (a *AT) trailingFor(line string) int {
	if hasAnyPrefix(line, a.cfg.twoLine) {
		return 1
	}
	return 0
}

// emit queues the URC for every handler whose prefix matches its first
// line, or for the unhandled handler when none does.
func (a *AT) emit(lines []string) {
	matched := false
	for _, ind := range a.handlers {
		if strings.HasPrefix(lines[0], ind.prefix) {
			matched = true
			a.queue(ind, ind.h, lines)
		}
	}
	if matched {
		return
	}
	if a.cfg.unhandled == nil {
		a.cfg.log.Debug("AT unsolicited line with no handler", "lines", lines)
		return
	}
	a.queue(nil, a.cfg.unhandled, lines)
}

func (a *AT) queue(ind *indication, h Handler, lines []string) {
	select {
	case a.urcs <- urc{ind: ind, h: h, lines: lines}:
	default:
		a.cfg.log.Warn("AT URC queue full, URC dropped", "lines", lines, "queue", cap(a.urcs))
	}
}

func (a *AT) isBareURC(line string) bool {
	for _, w := range a.cfg.bareURCs {
		if line == w {
			return true
		}
	}
	for _, ind := range a.handlers {
		if !strings.HasPrefix(ind.prefix, "+") && strings.HasPrefix(line, ind.prefix) {
			return true
		}
	}
	return false
}

// isEcho recognises the modem's echo of the command, also when line noise
// that arrived without a line ending sits in front of it.
func isEcho(line, echo string) bool {
	return len(line) >= len(echo) && strings.EqualFold(line[len(line)-len(echo):], echo)
}

func hasAnyPrefix(line string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(line, p) {
			return true
		}
	}
	return false
}

// isExtended reports whether line has the "+NAME:" shape of an extended
// command's answer or URC.
func isExtended(line string) bool {
	if len(line) < 3 || line[0] != '+' {
		return false
	}
	for i := 1; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ':':
			return i > 1
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '&':
		default:
			return false
		}
	}
	return false
}

func isFinalLine(line string) bool {
	ok, _ := finalResult(line)
	return ok
}

// isStrayFinal reports the final results that mean nothing without a
// command. NO CARRIER and the like are also unsolicited (a call ended), so
// they go on to the URC handlers.
func isStrayFinal(line string) bool {
	ok, err := finalResult(line)
	if !ok {
		return false
	}
	if err == nil || err == ErrError {
		return true
	}
	_, isResult := err.(*ResultError)
	return !isResult
}
