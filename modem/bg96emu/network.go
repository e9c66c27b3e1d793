package bg96emu

import (
	"fmt"
	"time"
)

// powerDownDelay is how long AT+QPOWD=1 takes to close the file system
// before POWERED DOWN; real modems take seconds, the host only cares that
// OK comes first.
const powerDownDelay = 200 * time.Millisecond

func regHandler(d Domain) handler {
	return func(m *Modem, c command) resp {
		switch c.typ {
		case cmdRead:
			return resp{info: []string{m.st.regLine(d, true)}}
		case cmdTest:
			return resp{info: []string{domainPrefix[d] + ": (0-2)"}}
		case cmdSet:
			if v, ok := intArg(c.args, 0, 0, 2, 0); ok && len(c.args) == 1 {
				m.st.regN[d] = v
				return resp{}
			}
		}
		return errResp("ERROR")
	}
}

// csqRSSI maps dBm to the 27.007 0..31 scale (-113 dBm .. -51 dBm).
func csqRSSI(dbm int) int {
	return min(max((dbm+113)/2, 0), 31)
}

// qcsqSINR converts dB to the BG96's AT+QCSQ scale: 1/5 dB steps from
// -20 dB (0) to +30 dB (250), which is why real captures show 165 or 250.
func qcsqSINR(db int) int {
	return min(max((db+20)*5, 0), 250)
}

func qcsqLine(s Signal) string {
	switch s.Act {
	case "GSM":
		return fmt.Sprintf(`+QCSQ: "GSM",%d`, s.RSSI)
	case "CAT-M1", "CAT-NB1":
		return fmt.Sprintf(`+QCSQ: %q,%d,%d,%d,%d`, s.Act, s.RSSI, s.RSRP, qcsqSINR(s.SINR), s.RSRQ)
	}
	return `+QCSQ: "NOSERVICE"`
}

// nwinfo gives AT+QNWINFO's band and channel per access technology; the
// values are plausible German ones (LTE band 20 for Cat-M1, band 8 for NB).
var nwinfo = map[int]struct{ act, band string }{
	ActGSM:   {`"GSM"`, `"GSM 900",62`},
	ActEMTC:  {`"CAT-M1"`, `"LTE BAND 20",6300`},
	ActNBIoT: {`"CAT-NB1"`, `"LTE BAND 8",3547`},
}

func init() {
	register(regHandler(CS), "+CREG")
	register(regHandler(PS), "+CGREG")
	register(regHandler(EPS), "+CEREG")
	register(func(m *Modem, c command) resp {
		switch c.typ {
		case cmdExec:
			s := m.st.signal()
			if s.Act == "NOSERVICE" {
				return resp{info: []string{"+CSQ: 99,99"}}
			}
			return resp{info: []string{fmt.Sprintf("+CSQ: %d,99", csqRSSI(s.RSSI))}}
		case cmdTest:
			return resp{info: []string{"+CSQ: (0-31,99),(0-7,99)"}}
		}
		return errResp("ERROR")
	}, "+CSQ")
	register(func(m *Modem, c command) resp {
		switch c.typ {
		case cmdExec:
			return resp{info: []string{qcsqLine(m.st.signal())}}
		case cmdTest:
			return resp{info: []string{`+QCSQ: "NOSERVICE","GSM","CAT-M1","CAT-NB1"`}}
		}
		return errResp("ERROR")
	}, "+QCSQ")
	register(copsHandler, "+COPS")
	register(func(m *Modem, c command) resp {
		if c.typ != cmdExec {
			return errResp("ERROR")
		}
		act, ok := m.st.servingAct()
		info, known := nwinfo[act]
		if !ok || !known {
			return resp{info: []string{"+QNWINFO: No Service"}}
		}
		return resp{info: []string{fmt.Sprintf("+QNWINFO: %s,%q,%s", info.act, m.cfg.MCCMNC, info.band)}}
	}, "+QNWINFO")
	register(cgattHandler, "+CGATT")
	register(cfunHandler, "+CFUN")
	register(qpowdHandler, "+QPOWD")
}

func copsHandler(m *Modem, c command) resp {
	st := &m.st
	switch c.typ {
	case cmdRead:
		act, ok := st.servingAct()
		if !ok {
			return resp{info: []string{fmt.Sprintf("+COPS: %d", st.copsMode)}}
		}
		name := m.cfg.Operator
		if st.copsFmt == 2 {
			name = m.cfg.MCCMNC
		}
		return resp{info: []string{fmt.Sprintf("+COPS: %d,%d,%q,%d", st.copsMode, st.copsFmt, name, act)}}
	case cmdTest:
		if st.power != powerOn || st.cfun != 1 {
			return errResp(m.cmeLocked(30))
		}
		return resp{info: []string{fmt.Sprintf(`+COPS: (2,%q,%q,%q,%d),,(0,1,2,3,4),(0,1,2)`,
			m.cfg.Operator, m.cfg.Operator, m.cfg.MCCMNC, ActEMTC)}}
	case cmdSet:
		mode, ok := intArg(c.args, 0, 0, 4, 0)
		if !ok {
			return errResp("ERROR")
		}
		switch mode {
		case 0:
			if len(c.args) > 1 {
				return errResp("ERROR")
			}
			return m.setCopsModeLocked(0)
		case 2:
			return m.setCopsModeLocked(2)
		case 3:
			f, ok := intArg(c.args, 1, 0, 2, 0)
			if !ok || len(c.args) != 2 {
				return errResp("ERROR")
			}
			st.copsFmt = f
			return resp{}
		}
		// Manual selection would need a PLMN list; the simulated network
		// has one operator, so automatic mode is all that makes sense.
		return errResp(m.cmeLocked(3))
	}
	return errResp("ERROR")
}

func (m *Modem) setCopsModeLocked(mode int) resp {
	if m.st.copsMode == mode {
		return resp{}
	}
	m.st.copsMode = mode
	if mode == 0 {
		m.st.radioReady = false
		m.afterLocked(m.cfg.RegisterDelay, m.radioUp)
	}
	urcs := m.applyLocked()
	return resp{then: func() { m.emit(urcs...) }}
}

func cgattHandler(m *Modem, c command) resp {
	st := &m.st
	switch c.typ {
	case cmdRead:
		v := 0
		if st.eff[PS].registered() || st.eff[EPS].registered() {
			v = 1
		}
		return resp{info: []string{fmt.Sprintf("+CGATT: %d", v)}}
	case cmdTest:
		return resp{info: []string{"+CGATT: (0,1)"}}
	case cmdSet:
		v, ok := intArg(c.args, 0, 0, 1, 0)
		if !ok || len(c.args) != 1 {
			return errResp("ERROR")
		}
		if v == 1 && (st.cfun != 1 || !(st.net[PS].registered() || st.net[EPS].registered())) {
			// BG96 blocks until the attach fails; the simulator answers
			// at once so tests need not wait 140 s.
			return errResp(m.cmeLocked(30))
		}
		st.attached = v == 1
		urcs := m.applyLocked()
		return resp{then: func() { m.emit(urcs...) }}
	}
	return errResp("ERROR")
}

func cfunHandler(m *Modem, c command) resp {
	st := &m.st
	switch c.typ {
	case cmdRead:
		return resp{info: []string{fmt.Sprintf("+CFUN: %d", st.cfun)}}
	case cmdTest:
		return resp{info: []string{"+CFUN: (0,1,4),(0,1)"}}
	case cmdSet:
		fun, ok1 := intArg(c.args, 0, 0, 4, 1)
		rst, ok2 := intArg(c.args, 1, 0, 1, 0)
		if !ok1 || !ok2 || len(c.args) > 2 || fun == 2 || fun == 3 {
			return errResp("ERROR")
		}
		if rst == 1 {
			if fun != 1 {
				return errResp("ERROR")
			}
			// OK first, then the banner, then the modem is deaf until RDY
			// (a BG96 in TinyGSM issue #157).
			return resp{then: func() {
				m.mu.Lock()
				m.powerOffLocked(powerBooting)
				m.mu.Unlock()
				m.emit("POWERED DOWN")
				m.after(m.cfg.BootDelay, m.boot)
			}}
		}
		if fun == st.cfun {
			return resp{}
		}
		st.cfun = fun
		if fun == 1 {
			st.radioReady = false
			m.afterLocked(m.cfg.RegisterDelay, m.radioUp)
		}
		urcs := m.applyLocked()
		return resp{then: func() { m.emit(urcs...) }}
	}
	return errResp("ERROR")
}

func qpowdHandler(m *Modem, c command) resp {
	mode := 1
	switch c.typ {
	case cmdExec:
	case cmdSet:
		v, ok := intArg(c.args, 0, 0, 1, 1)
		if !ok || len(c.args) != 1 {
			return errResp("ERROR")
		}
		mode = v
	case cmdTest:
		return resp{info: []string{"+QPOWD: (0,1)"}}
	default:
		return errResp("ERROR")
	}
	down := func() {
		m.mu.Lock()
		m.powerOffLocked(powerOff)
		m.mu.Unlock()
		m.emit("POWERED DOWN")
	}
	if mode == 0 {
		// Immediate power-down answers nothing but the banner.
		return resp{final: "POWERED DOWN", then: func() {
			m.mu.Lock()
			m.powerOffLocked(powerOff)
			m.mu.Unlock()
		}}
	}
	return resp{then: func() { m.after(powerDownDelay, down) }}
}
