package bg96emu

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// nvram is what the BG96 keeps in flash: PDP contexts, APN credentials
// and the radio configuration. Unlike settings it survives AT&F, reboots
// and power cycles.
type nvram struct {
	pdp      map[int]pdpContext
	scanSeq  string // AT+QCFG="nwscanseq", e.g. 020301
	scanMode int    // 0 auto, 1 GSM only, 3 LTE only
	iotMode  int    // 0 LTE-M, 1 NB-IoT, 2 both
	bands    [3]uint64
	roam     int // 1 off, 2 on, 255 auto
}

type pdpContext struct {
	typ, apn      string
	user, pass    string
	auth, ctxType int
}

func defaultNVRAM() nvram {
	// A BG96 as shipped: context 1 without an APN, every RAT, all bands.
	return nvram{
		pdp:     map[int]pdpContext{1: {typ: "IP", ctxType: 1}},
		scanSeq: "020301", iotMode: 2, roam: 255,
		bands: [3]uint64{0xf, 0x400a0e189f, 0xa0e189f},
	}
}

// ratAllowed says whether the radio configuration lets the modem use the
// network's access technology act.
func (nv nvram) ratAllowed(act int) bool {
	switch act {
	case ActGSM:
		return nv.scanMode == 0 || nv.scanMode == 1
	case ActEMTC:
		return nv.scanMode != 1 && (nv.iotMode == 0 || nv.iotMode == 2)
	case ActNBIoT:
		return nv.scanMode != 1 && (nv.iotMode == 1 || nv.iotMode == 2)
	}
	return true
}

// NVWrites counts the writes to NVRAM settings by name (pdp_context,
// apn_auth, nwscanseq, nwscanmode, iotopmode, band, roamservice), for
// tests that the host writes only what differs.
func (m *Modem) NVWrites() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]int{}
	for k, v := range m.nvWrites {
		out[k] = v
	}
	return out
}

// SetAcceptedAPN makes the network reject PDP activations for any APN but
// apn ("" accepts any), with ESM cause 27 in AT+CEER, as a network does
// with a wrong APN.
func (m *Modem) SetAcceptedAPN(apn string) {
	m.mu.Lock()
	m.acceptAPN = apn
	m.mu.Unlock()
}

// SetPIN makes the SIM ask for pin at every power-up, with attempts left
// before PUK lock (3 on a fresh SIM).
func (m *Modem) SetPIN(pin string, attempts int) {
	m.mu.Lock()
	m.st.pin, m.st.pinLeft, m.st.pinLocked = pin, attempts, pin != ""
	m.mu.Unlock()
}

// PINAttemptsLeft is how many PIN attempts the SIM has left.
func (m *Modem) PINAttemptsLeft() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.pinLeft
}

func (m *Modem) wroteLocked(name string) {
	if m.nvWrites == nil {
		m.nvWrites = map[string]int{}
	}
	m.nvWrites[name]++
}

func init() {
	register(cgdcontHandler, "+CGDCONT")
	register(qicsgpHandler, "+QICSGP")
	register(qcfgHandler, "+QCFG")
	register(cpinHandler, "+CPIN")
	register(qpincHandler, "+QPINC")
	register(func(m *Modem, c command) resp {
		if c.typ != cmdExec {
			return errResp("ERROR")
		}
		cause := m.st.ceer
		if cause == "" {
			cause = "No cause information available"
		}
		return resp{info: []string{fmt.Sprintf("+CEER: %q", cause)}}
	}, "+CEER")
}

func cgdcontHandler(m *Modem, c command) resp {
	nv := &m.st.nv
	switch c.typ {
	case cmdRead:
		var info []string
		for cid := 1; cid <= 15; cid++ {
			if p, ok := nv.pdp[cid]; ok {
				info = append(info, fmt.Sprintf(`+CGDCONT: %d,%q,%q,"0.0.0.0",0,0,0,0`, cid, p.typ, p.apn))
			}
		}
		return resp{info: info}
	case cmdSet:
		cid, ok := intArg(c.args, 0, 1, 15, 0)
		if !ok || cid == 0 {
			return errResp("ERROR")
		}
		typ, _ := unquote(argAt(c.args, 1))
		apn, _ := unquote(argAt(c.args, 2))
		switch typ {
		case "IP", "IPV6", "IPV4V6":
		default:
			return errResp(m.cmeLocked(4))
		}
		p := nv.pdp[cid]
		p.typ, p.apn = typ, apn
		nv.pdp[cid] = p
		m.wroteLocked("pdp_context")
		return resp{}
	}
	return errResp("ERROR")
}

func argAt(args []string, i int) string {
	if i < len(args) {
		return args[i]
	}
	return ""
}

func qicsgpHandler(m *Modem, c command) resp {
	nv := &m.st.nv
	if c.typ != cmdSet {
		return errResp("ERROR")
	}
	cid, ok := intArg(c.args, 0, 1, 16, 0)
	if !ok || cid == 0 {
		return errResp("ERROR")
	}
	p := nv.pdp[cid]
	if len(c.args) == 1 {
		return resp{info: []string{fmt.Sprintf(`+QICSGP: %d,%q,%q,%q,%d`, max(p.ctxType, 1), p.apn, p.user, p.pass, p.auth)}}
	}
	ct, ok1 := intArg(c.args, 1, 1, 3, 1)
	auth, ok2 := intArg(c.args, 5, 0, 3, 0)
	if !ok1 || !ok2 || len(c.args) > 6 {
		return errResp("ERROR")
	}
	p.ctxType, p.auth = ct, auth
	p.apn, _ = unquote(argAt(c.args, 2))
	p.user, _ = unquote(argAt(c.args, 3))
	p.pass, _ = unquote(argAt(c.args, 4))
	if p.typ == "" {
		p.typ = "IP"
	}
	nv.pdp[cid] = p
	m.wroteLocked("apn_auth")
	return resp{}
}

func qcfgHandler(m *Modem, c command) resp {
	nv := &m.st.nv
	if c.typ != cmdSet || len(c.args) == 0 {
		return errResp("ERROR")
	}
	name, _ := unquote(c.args[0])
	name = strings.ToLower(name)
	vals := c.args[1:]
	// A trailing <effect> argument (0 after reboot, 1 at once) is taken
	// as "at once".
	line := func(v string) resp { return resp{info: []string{fmt.Sprintf("+QCFG: %q,%s", name, v)}} }
	var urcs []string
	switch name {
	case "nwscanseq":
		if len(vals) == 0 {
			return line(nv.scanSeq)
		}
		v := vals[0]
		if len(v)%2 != 0 || len(v) == 0 || strings.Trim(v, "0123") != "" {
			return errResp("ERROR")
		}
		nv.scanSeq = v
	case "nwscanmode", "iotopmode", "roamservice":
		ptr := map[string]*int{"nwscanmode": &nv.scanMode, "iotopmode": &nv.iotMode, "roamservice": &nv.roam}[name]
		if len(vals) == 0 {
			return line(strconv.Itoa(*ptr))
		}
		v, ok := intArg(vals, 0, 0, 255, 0)
		if !ok {
			return errResp("ERROR")
		}
		*ptr = v
		urcs = m.applyLocked()
	case "band":
		if len(vals) == 0 {
			return line(fmt.Sprintf("0x%x,0x%x,0x%x", nv.bands[0], nv.bands[1], nv.bands[2]))
		}
		if len(vals) < 3 {
			return errResp("ERROR")
		}
		for i := range 3 {
			v, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(vals[i]), "0x"), 16, 64)
			if err != nil {
				return errResp("ERROR")
			}
			nv.bands[i] = v
		}
	default:
		return errResp("ERROR")
	}
	m.wroteLocked(name)
	return resp{then: func() { m.emit(urcs...) }}
}

func cpinHandler(m *Modem, c command) resp {
	st := &m.st
	switch c.typ {
	case cmdRead:
		state := "READY"
		switch {
		case st.pinLocked && st.pinLeft == 0:
			state = "SIM PUK"
		case st.pinLocked:
			state = "SIM PIN"
		}
		return resp{info: []string{"+CPIN: " + state}}
	case cmdSet:
		pin, _ := unquote(argAt(c.args, 0))
		switch {
		case !st.pinLocked:
			return errResp(m.cmeLocked(3))
		case st.pinLeft == 0:
			return errResp(m.cmeLocked(12))
		case pin != st.pin:
			st.pinLeft--
			return errResp(m.cmeLocked(16))
		}
		st.pinLocked, st.pinLeft = false, 3
		st.radioReady = false
		m.afterLocked(m.cfg.RegisterDelay, m.radioUp)
		return resp{then: func() { m.emit("+CPIN: READY", "+QIND: SMS DONE") }}
	}
	return errResp("ERROR")
}

func qpincHandler(m *Modem, c command) resp {
	if c.typ != cmdSet {
		return errResp("ERROR")
	}
	if f, _ := unquote(argAt(c.args, 0)); f != "SC" {
		return errResp("ERROR")
	}
	return resp{info: []string{fmt.Sprintf(`+QPINC: "SC",%d,10`, m.st.pinLeft)}}
}

// SetNetworkTimeOffset makes the network's time (AT+QLTS, AT+CCLK?,
// +CTZE) run d ahead of the host's clock; the network's zone is +01:00.
func (m *Modem) SetNetworkTimeOffset(d time.Duration) {
	m.mu.Lock()
	m.netTimeOffset = d
	m.mu.Unlock()
}

// netZone is the simulated network's zone, +01:00, in quarter hours.
const netZone = 4

func (m *Modem) netTimeLocked() time.Time { return time.Now().Add(m.netTimeOffset).UTC() }

func init() {
	register(func(m *Modem, c command) resp {
		mode := 0
		if c.typ == cmdSet {
			v, ok := intArg(c.args, 0, 0, 2, 0)
			if !ok {
				return errResp("ERROR")
			}
			mode = v
		} else if c.typ != cmdExec {
			return errResp("ERROR")
		}
		if !m.st.registered() {
			return resp{info: []string{`+QLTS: ""`}}
		}
		t := m.netTimeLocked()
		if mode == 2 {
			t = t.Add(netZone * 15 * time.Minute)
		}
		return resp{info: []string{fmt.Sprintf(`+QLTS: "%s+%02d,0"`, t.Format("2006/01/02,15:04:05"), netZone)}}
	}, "+QLTS")
	register(func(m *Modem, c command) resp {
		if c.typ != cmdRead {
			return errResp("ERROR")
		}
		// Never set from the network: the BG96 runs from its epoch.
		t := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
		if m.st.nitz {
			t = m.netTimeLocked().Add(netZone * 15 * time.Minute)
		}
		return resp{info: []string{fmt.Sprintf(`+CCLK: "%s+%02d"`, t.Format("06/01/02,15:04:05"), netZone)}}
	}, "+CCLK")
	register(func(m *Modem, c command) resp {
		switch c.typ {
		case cmdRead:
			return resp{info: []string{fmt.Sprintf("+CTZR: %d", m.st.ctzr)}}
		case cmdSet:
			v, ok := intArg(c.args, 0, 0, 2, 0)
			if !ok {
				return errResp("ERROR")
			}
			m.st.ctzr = v
			return resp{}
		}
		return errResp("ERROR")
	}, "+CTZR")
}

// nitzLocked is the network's time report on registration: the modem's
// clock is set, and +CTZE/+CTZV go out as AT+CTZR asked.
func (m *Modem) nitzLocked() []string {
	m.st.nitz = true
	t := m.netTimeLocked()
	switch m.st.ctzr {
	case 1:
		return []string{fmt.Sprintf(`+CTZV: "+%02d"`, netZone)}
	case 2:
		return []string{fmt.Sprintf(`+CTZE: "+%02d",0,"%s"`, netZone, t.Format("2006/01/02,15:04:05"))}
	}
	return nil
}
