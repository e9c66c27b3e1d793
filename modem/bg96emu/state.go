package bg96emu

import (
	"fmt"
	"strings"
	"time"
)

// Domain selects which registration a change applies to: the circuit
// domain (AT+CREG), GPRS (AT+CGREG) or EPS/LTE (AT+CEREG).
type Domain int

// Registration domains. AllDomains applies one change to all three.
const (
	CS Domain = iota
	PS
	EPS
	AllDomains
)

var domainPrefix = [3]string{"+CREG", "+CGREG", "+CEREG"}

// ParseDomain reads cs, ps, eps or all (case-insensitive).
func ParseDomain(s string) (Domain, error) {
	switch strings.ToLower(s) {
	case "cs", "creg":
		return CS, nil
	case "ps", "cgreg":
		return PS, nil
	case "eps", "cereg":
		return EPS, nil
	case "all":
		return AllDomains, nil
	}
	return 0, fmt.Errorf("unknown domain %q (want cs, ps, eps or all)", s)
}

// Registration stat values as 27.007 numbers them.
const (
	NotSearching = 0
	Home         = 1
	Searching    = 2
	Denied       = 3
	Unknown      = 4
	Roaming      = 5
)

// Access technologies as +CREG/+CEREG/+COPS number them on a BG96.
const (
	ActGSM   = 0
	ActEMTC  = 8 // LTE Cat-M1
	ActNBIoT = 9 // LTE Cat-NB1
)

// Registration is what the network grants in one domain.
type Registration struct {
	Stat int    // NotSearching .. Roaming
	Area string // LAC or TAC, hex, e.g. 1A2B
	Cell string // cell id, hex, up to 8 digits
	AcT  int    // ActGSM, ActEMTC or ActNBIoT
}

func (r Registration) registered() bool { return r.Stat == Home || r.Stat == Roaming }

// Signal is the radio condition. Act is one of NOSERVICE, GSM, CAT-M1 or
// CAT-NB1 (BG96 spelling); GSM uses RSSI only.
type Signal struct {
	Act  string
	RSSI int // dBm
	RSRP int // dBm
	SINR int // dB; AT+QCSQ prints it in the BG96's 1/5 dB steps
	RSRQ int // dB
}

// NoService is the signal of a radio that hears nothing.
var NoService = Signal{Act: "NOSERVICE"}

type power int

const (
	powerOn power = iota
	powerBooting
	powerOff
)

// slot is one SM storage entry; pdu includes the SMSC field.
type slot struct {
	stat int // 0 rec unread, 1 rec read, 2 sto unsent, 3 sto sent
	pdu  []byte
}

// settings are what AT&F and a reboot restore.
type settings struct {
	echo    bool
	cmee    int
	cmgf    int
	cnmi    [5]int
	regN    [3]int
	copsFmt int
}

func defaultSettings() settings {
	// BG96 factory defaults: echo on, CMEE=1, PDU mode, CNMI=2,1,0,0,0.
	return settings{echo: true, cmee: 1, cnmi: [5]int{2, 1, 0, 0, 0}}
}

type state struct {
	settings
	power      power
	cfun       int
	radioReady bool // registration delay after radio-on has elapsed
	copsMode   int
	attached   bool
	net        [3]Registration // what the network offers
	eff        [3]Registration // what the modem last reported
	sig        Signal

	// nv survives reboots and power cycles, as the BG96's NVRAM does.
	nv nvram
	// The SIM's PIN lock: pin is the right one, pinLeft the attempts
	// before PUK; pinLocked while it waits for AT+CPIN.
	pin       string
	pinLeft   int
	pinLocked bool
	// ceer is the last failure cause AT+CEER reports.
	ceer string
	// ctzr is AT+CTZR (time zone reports); nitz says the network has set
	// the modem's clock since power-up.
	ctzr int
	nitz bool

	csca    string
	cscaTOA int
	store   []*slot
	pending [][]byte // MT PDUs the network still holds
	sent    []SentMessage
	mr      int
	prompt  *prompt

	// simBusyUntil: SIM commands answer SIM busy until then (after boot).
	simBusyUntil time.Time
}

func newState(cfg *Config) state {
	st := state{
		settings: defaultSettings(),
		cfun:     1, radioReady: true, attached: true,
		csca: cfg.SMSC, cscaTOA: toaFor(cfg.SMSC),
		store: make([]*slot, cfg.StorageSize),
		sig:   NoService,
		nv:    defaultNVRAM(), pinLeft: 3,
	}
	if !cfg.StartUnregistered {
		reg := Registration{Stat: Home, Area: "1A2B", Cell: "01A2B3C", AcT: ActEMTC}
		st.net = [3]Registration{reg, reg, reg}
		st.sig = Signal{Act: "CAT-M1", RSSI: -65, RSRP: -95, SINR: 12, RSRQ: -11}
		st.nitz = true
	}
	for d := range st.net {
		st.eff[d] = st.effective(Domain(d))
	}
	return st
}

func toaFor(num string) int {
	if strings.HasPrefix(num, "+") {
		return 145
	}
	return 129
}

// effective is the registration the modem reports: the network's offer
// filtered by power, radio, operator selection and attach state.
func (st *state) effective(d Domain) Registration {
	off := Registration{Stat: NotSearching}
	switch {
	case st.power != powerOn || st.cfun != 1 || st.copsMode == 2 || st.pinLocked:
		return off
	case st.net[d].registered() && !st.nv.ratAllowed(st.net[d].AcT):
		// The radio configuration excludes the network's technology.
		return Registration{Stat: Searching}
	case d != CS && !st.attached:
		return off
	case !st.radioReady && st.net[d].registered():
		return Registration{Stat: Searching}
	}
	return st.net[d]
}

func (st *state) signal() Signal {
	if st.power != powerOn || st.cfun != 1 {
		return NoService
	}
	return st.sig
}

func (st *state) registered() bool {
	for _, r := range st.eff {
		if r.registered() {
			return true
		}
	}
	return false
}

// servingAct is the access technology of the serving cell, preferring EPS
// as LTE-M modems do.
func (st *state) servingAct() (int, bool) {
	for _, d := range []Domain{EPS, PS, CS} {
		if st.eff[d].registered() {
			return st.eff[d].AcT, true
		}
	}
	return 0, false
}

// regLine formats a registration; withN selects the AT+CxREG? form.
func (st *state) regLine(d Domain, withN bool) string {
	r := st.eff[d]
	var b strings.Builder
	b.WriteString(domainPrefix[d] + ": ")
	if withN {
		fmt.Fprintf(&b, "%d,", st.regN[d])
	}
	fmt.Fprintf(&b, "%d", r.Stat)
	if st.regN[d] == 2 && r.registered() && r.Area != "" {
		fmt.Fprintf(&b, ",%q,%q,%d", r.Area, r.Cell, r.AcT)
	}
	return b.String()
}

// applyLocked recomputes the reported registrations and returns the URCs
// the host asked for (per AT+CxREG=<n>) for every change.
func (m *Modem) applyLocked() []string {
	st := &m.st
	var urcs []string
	for d := range st.eff {
		old, cur := st.eff[d], st.effective(Domain(d))
		if old == cur {
			continue
		}
		st.eff[d] = cur
		n := st.regN[d]
		locChanged := cur.Area != old.Area || cur.Cell != old.Cell || cur.AcT != old.AcT
		if n == 1 && old.Stat != cur.Stat || n == 2 && (old.Stat != cur.Stat || cur.registered() && locChanged) {
			urcs = append(urcs, st.regLine(Domain(d), false))
		}
	}
	if st.registered() {
		if !st.nitz {
			urcs = append(urcs, m.nitzLocked()...)
		}
		urcs = append(urcs, m.flushPendingLocked()...)
	} else {
		m.dropCarrierLocked("Lost connection")
	}
	return urcs
}

// SetRegistration changes what the network grants in domain d and emits
// the registration URCs the host enabled.
func (m *Modem) SetRegistration(d Domain, r Registration) error {
	if d < CS || d > AllDomains {
		return fmt.Errorf("sim: invalid domain %d", d)
	}
	if r.Stat < NotSearching || r.Stat > Roaming {
		return fmt.Errorf("sim: invalid registration stat %d", r.Stat)
	}
	m.mu.Lock()
	if d == AllDomains {
		m.st.net = [3]Registration{r, r, r}
	} else {
		m.st.net[d] = r
	}
	urcs := m.applyLocked()
	m.mu.Unlock()
	m.emit(urcs...)
	return nil
}

// SetSignal changes the radio condition (NoService for none).
func (m *Modem) SetSignal(s Signal) error {
	switch s.Act {
	case "NOSERVICE", "GSM", "CAT-M1", "CAT-NB1":
	default:
		return fmt.Errorf("sim: unknown signal act %q (want NOSERVICE, GSM, CAT-M1 or CAT-NB1)", s.Act)
	}
	m.mu.Lock()
	m.st.sig = s
	m.mu.Unlock()
	return nil
}

// Registered reports the registration the modem currently reports in d
// (CS, PS or EPS).
func (m *Modem) Registered(d Domain) Registration {
	if d < CS || d > EPS {
		return Registration{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.eff[d]
}

// NetworkReset models the network detaching the SIM, as the operator's
// connectivity reset does: every domain where the modem is registered
// drops to searching (with the URCs the host enabled, so a host sees
// "+CEREG: 2" and later "+CEREG: 1" as on a real detach), and the radio
// registers again after Config.RegisterDelay, as after AT+CFUN=1. MT
// messages arriving meanwhile wait in the network and AT+CMGS answers
// +CMS ERROR: 331. A modem that is off, booting or at CFUN 0 has no
// registration to lose and is left alone.
func (m *Modem) NetworkReset() {
	m.mu.Lock()
	st := &m.st
	if st.power != powerOn || st.cfun != 1 {
		m.mu.Unlock()
		return
	}
	st.radioReady = false
	m.afterLocked(m.cfg.RegisterDelay, m.radioUp)
	urcs := m.applyLocked()
	m.mu.Unlock()
	m.log.Info("sim: network reset; re-registering", "after", m.cfg.RegisterDelay)
	m.emit(urcs...)
}

// Reboot resets the modem as its RESET line would, or powers it on if it
// is off: input is ignored for Config.BootDelay, then the start-up URCs
// (RDY ... APP RDY) appear and the radio registers again. Settings go back
// to factory defaults; SM storage survives.
func (m *Modem) Reboot() {
	m.mu.Lock()
	m.rebootLocked()
	m.mu.Unlock()
}

func (m *Modem) rebootLocked() {
	m.powerOffLocked(powerBooting)
	m.afterLocked(m.cfg.BootDelay, m.boot)
}

// powerOffLocked drops the modem into p (off or booting): pending timers
// become stale and the radio disappears without URCs, as nobody is awake
// to print them.
func (m *Modem) powerOffLocked(p power) {
	m.epoch++
	st := &m.st
	st.power = p
	st.prompt = nil
	m.dropCarrierLocked("Lost connection")
	st.settings = defaultSettings()
	st.cfun, st.copsMode, st.attached, st.radioReady = 1, 0, true, false
	st.nitz, st.ctzr = false, 0
	for d := range st.eff {
		st.eff[d] = st.effective(Domain(d))
	}
}

func (m *Modem) boot() {
	m.mu.Lock()
	m.st.power = powerOn
	m.st.simBusyUntil = time.Now().Add(m.cfg.SIMBusy)
	urcs := []string{"RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE", "APP RDY"}
	if m.st.pin != "" {
		// A SIM with its PIN on asks again at every power-up, and the
		// modem reads the SMS store only once it is unlocked.
		m.st.pinLocked = true
		urcs = []string{"RDY", "+CFUN: 1", "+CPIN: SIM PIN", "+QUSIM: 1", "APP RDY"}
	}
	urcs = append(urcs, m.applyLocked()...)
	m.afterLocked(m.cfg.RegisterDelay, m.radioUp)
	m.mu.Unlock()
	m.emit(urcs...)
}

// radioUp completes a (re)registration started by boot, AT+CFUN=1,
// AT+CGATT=1 or AT+COPS=0.
func (m *Modem) radioUp() {
	m.mu.Lock()
	m.st.radioReady = true
	urcs := m.applyLocked()
	m.mu.Unlock()
	m.emit(urcs...)
}

// PowerOff cuts power: no answers and no URCs until Reboot.
func (m *Modem) PowerOff() {
	m.mu.Lock()
	m.powerOffLocked(powerOff)
	m.mu.Unlock()
}
