package bg96emu

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

type cmdType int

const (
	cmdExec cmdType = iota // AT+X
	cmdRead                // AT+X?
	cmdTest                // AT+X=?
	cmdSet                 // AT+X=<args>
)

// command is one command of a command line, e.g. +CMGR=3 or E0.
type command struct {
	name string // upper case: "+CSQ", "E", "&F"
	typ  cmdType
	args []string // split on commas outside quotes; quotes kept
}

type handler func(m *Modem, c command) resp

// handlers maps command names to their emulation; filled by init functions
// in the files that implement them so each area stays in its own file.
var handlers = map[string]handler{}

func register(h handler, names ...string) {
	for _, n := range names {
		handlers[n] = h
	}
}

// handleLine answers one command line from the host, applying the command
// faults first.
func (m *Modem) handleLine(line string, overflow bool) {
	cmds, perr := parseLine(line)
	key := ""
	if perr == nil && len(cmds) > 0 {
		key = cmds[0].name
	}
	m.mu.Lock()
	if m.flt.stopArmed {
		if m.flt.stopLeft == 0 {
			m.flt.silent = true
			m.mu.Unlock()
			return
		}
		m.flt.stopLeft--
	}
	delay := m.flt.delay[key]
	m.mu.Unlock()
	m.commands.Add(1)
	if delay > 0 && !m.sleep(delay) {
		return
	}

	m.mu.Lock()
	var r resp
	switch {
	case overflow || perr != nil:
		m.log.Debug("sim: bad command line", "line", line, "err", perr)
		r = errResp("ERROR")
	default:
		r = m.execLocked(cmds)
	}
	m.mu.Unlock()
	m.log.Debug("sim: command", "line", line, "final", r.final, "prompt", r.prompt)
	m.writeResp(r)
	if r.then != nil {
		r.then()
	}
}

// simCommands are the commands that need the SIM, which answer SIM busy
// while it initialises after a boot.
var simCommands = map[string]bool{
	"+CPIN": true, "+QCCID": true, "+CIMI": true, "+CSCA": true, "+CPMS": true,
	"+CMGL": true, "+CMGR": true, "+CMGD": true, "+CMGS": true, "+CMGW": true, "+CNUM": true,
}

// execLocked runs the commands of one line; like V.250 DCEs it stops at
// the first error and drops the remaining commands.
func (m *Modem) execLocked(cmds []command) resp {
	var out resp
	for i, c := range cmds {
		if f, ok := m.faultLocked(c.name); ok {
			return resp{info: out.info, final: f}
		}
		if simCommands[c.name] && time.Now().Before(m.st.simBusyUntil) {
			return resp{info: out.info, final: m.cmeLocked(14)}
		}
		h, ok := handlers[c.name]
		if !ok {
			return resp{info: out.info, final: "ERROR"}
		}
		r := h(m, c)
		out.info = append(out.info, r.info...)
		out.then = chain(out.then, r.then)
		if r.final != "" {
			out.final = r.final
			return out
		}
		if r.prompt {
			if i != len(cmds)-1 {
				m.st.prompt = nil
				return resp{info: out.info, final: "ERROR"}
			}
			out.prompt = true
		}
	}
	return out
}

func chain(a, b func()) func() {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return func() { a(); b() }
}

// parseLine splits "AT<cmd>[<cmd>...]" into commands: basic commands
// (E0, &F, I) may follow each other directly, extended ones (+X) are
// separated by ';'.
func parseLine(line string) ([]command, error) {
	line = strings.TrimSpace(line)
	if len(line) < 2 || !strings.EqualFold(line[:2], "AT") {
		return nil, fmt.Errorf("line does not start with AT")
	}
	body := line[2:]
	var cmds []command
	for body != "" {
		switch c := body[0]; {
		case c == ';' || c == ' ':
			body = body[1:]
		case c == '+':
			end := indexUnquoted(body, ';')
			cmd, err := parseExtended(body[:end])
			if err != nil {
				return nil, err
			}
			cmds = append(cmds, cmd)
			body = body[end:]
		case isLetter(c) || c == '&':
			n := 1
			if c == '&' {
				if len(body) < 2 || !isLetter(body[1]) {
					return nil, fmt.Errorf("bad basic command %q", body)
				}
				n = 2
			}
			name := strings.ToUpper(body[:n])
			j := n
			for j < len(body) && body[j] >= '0' && body[j] <= '9' {
				j++
			}
			cmd := command{name: name}
			if j > n {
				cmd.typ, cmd.args = cmdSet, []string{body[n:j]}
			}
			cmds = append(cmds, cmd)
			body = body[j:]
		default:
			return nil, fmt.Errorf("unexpected %q", c)
		}
	}
	return cmds, nil
}

func parseExtended(s string) (command, error) {
	i := 1
	for i < len(s) && (isLetter(s[i]) || s[i] >= '0' && s[i] <= '9') {
		i++
	}
	if i == 1 {
		return command{}, fmt.Errorf("empty extended command name")
	}
	c := command{name: strings.ToUpper(s[:i])}
	rest := strings.TrimSpace(s[i:])
	switch {
	case rest == "":
		c.typ = cmdExec
	case rest == "?":
		c.typ = cmdRead
	case rest == "=?":
		c.typ = cmdTest
	case rest[0] == '=':
		c.typ = cmdSet
		args, err := splitArgs(rest[1:])
		if err != nil {
			return command{}, err
		}
		c.args = args
	default:
		return command{}, fmt.Errorf("bad suffix %q after %s", rest, c.name)
	}
	return c, nil
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func indexUnquoted(s string, sep byte) int {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case sep:
			if !quoted {
				return i
			}
		}
	}
	return len(s)
}

func splitArgs(s string) ([]string, error) {
	if strings.Count(s, `"`)%2 != 0 {
		return nil, fmt.Errorf("unbalanced quotes in %q", s)
	}
	var args []string
	for {
		i := indexUnquoted(s, ',')
		args = append(args, strings.TrimSpace(s[:i]))
		if i == len(s) {
			return args, nil
		}
		s = s[i+1:]
	}
}

// unquote strips the quotes of a string argument; ok is false if it was
// not quoted.
func unquote(a string) (string, bool) {
	if len(a) >= 2 && a[0] == '"' && a[len(a)-1] == '"' {
		return a[1 : len(a)-1], true
	}
	return a, false
}

// intArg reads args[i] as an integer in [lo, hi]; a missing or empty
// argument yields def.
func intArg(args []string, i, lo, hi, def int) (int, bool) {
	if i >= len(args) || args[i] == "" {
		return def, true
	}
	n, err := strconv.Atoi(args[i])
	if err != nil || n < lo || n > hi {
		return 0, false
	}
	return n, true
}

var cmeText = map[int]string{
	3: "operation not allowed", 4: "operation not supported", 10: "SIM not inserted",
	11: "SIM PIN required", 12: "SIM PUK required", 13: "SIM failure", 16: "incorrect password", 14: "SIM busy", 21: "invalid index",
	30: "no network service", 50: "incorrect parameters", 100: "unknown",
}

var cmsText = map[int]string{
	300: "ME failure", 302: "operation not allowed", 303: "operation not supported",
	304: "invalid PDU mode parameter", 305: "invalid text mode parameter",
	321: "invalid memory index", 322: "memory full", 330: "SMSC address unknown",
	331: "no network service", 500: "unknown error",
}

// cmeLocked formats a +CME ERROR per AT+CMEE.
func (m *Modem) cmeLocked(code int) string { return m.errLocked("+CME ERROR: ", code, cmeText) }

// cmsLocked formats a +CMS ERROR per AT+CMEE; BG96 also reduces these to
// plain ERROR when CMEE=0.
func (m *Modem) cmsLocked(code int) string { return m.errLocked("+CMS ERROR: ", code, cmsText) }

func (m *Modem) errLocked(prefix string, code int, text map[int]string) string {
	switch m.st.cmee {
	case 0:
		return "ERROR"
	case 2:
		if t, ok := text[code]; ok {
			return prefix + t
		}
	}
	return prefix + strconv.Itoa(code)
}

func init() {
	register(func(m *Modem, c command) resp {
		v, ok := intArg(c.args, 0, 0, 1, 0)
		if !ok {
			return errResp("ERROR")
		}
		m.st.echo = v == 1
		return resp{}
	}, "E")
	register(func(m *Modem, c command) resp {
		// Only verbose result codes are emulated; V0 would change every
		// answer's shape and no host we support uses it.
		if len(c.args) == 1 && c.args[0] == "1" {
			return resp{}
		}
		return errResp("ERROR")
	}, "V")
	register(func(m *Modem, c command) resp {
		if v, ok := intArg(c.args, 0, 0, 0, 0); !ok || v != 0 {
			return errResp("ERROR")
		}
		return resp{}
	}, "Q", "&W")
	register(func(m *Modem, c command) resp {
		m.st.settings = defaultSettings()
		return resp{}
	}, "Z", "&F")
	register(func(m *Modem, c command) resp {
		return resp{info: []string{"Quectel", "BG96", "Revision: " + m.cfg.Firmware}}
	}, "I")
	ident := func(f func(m *Modem) string) handler {
		return func(m *Modem, c command) resp {
			switch c.typ {
			case cmdExec:
				return resp{info: []string{f(m)}}
			case cmdTest:
				return resp{}
			}
			return errResp("ERROR")
		}
	}
	register(ident(func(*Modem) string { return "Quectel" }), "+CGMI", "+GMI")
	register(ident(func(*Modem) string { return "BG96" }), "+CGMM", "+GMM")
	register(ident(func(m *Modem) string { return m.cfg.Firmware }), "+CGMR", "+GMR", "+QGMR")
	register(ident(func(m *Modem) string { return m.cfg.IMEI }), "+CGSN", "+GSN")
	register(ident(func(m *Modem) string { return "+QCCID: " + m.cfg.ICCID }), "+QCCID")
	register(ident(func(m *Modem) string { return m.cfg.IMSI }), "+CIMI")
	register(func(m *Modem, c command) resp {
		switch c.typ {
		case cmdRead:
			return resp{info: []string{fmt.Sprintf("+CMEE: %d", m.st.cmee)}}
		case cmdTest:
			return resp{info: []string{"+CMEE: (0-2)"}}
		case cmdSet:
			if v, ok := intArg(c.args, 0, 0, 2, 0); ok && len(c.args) == 1 {
				m.st.cmee = v
				return resp{}
			}
		}
		return errResp("ERROR")
	}, "+CMEE")
}
