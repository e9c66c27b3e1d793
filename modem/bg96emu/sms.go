package bg96emu

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/warthog618/sms"
	"github.com/warthog618/sms/encoding/pdumode"
	"github.com/warthog618/sms/encoding/tpdu"

	// Builds the library's character tables before any goroutine races to
	// build them on first use.
	_ "cellagent/modem/sms"
)

// maxTPDU is the largest TPDU 23.040 allows (SMS-SUBMIT with 140 octets of
// user data and the longest addresses and validity period).
const maxTPDU = 164

// SentMessage is one SMS-SUBMIT the host handed over with AT+CMGS.
type SentMessage struct {
	MR   int        // the reference the modem answered with +CMGS
	PDU  []byte     // as received, SMSC field included
	TPDU *tpdu.TPDU // decoded SMS-SUBMIT
	To   string     // destination number
	// SMSC is the service centre that carried it: the PDU's SMSC field,
	// or the modem's AT+CSCA when the field is empty.
	SMSC string
	Text string    // decoded user data of this segment ("" if undecodable)
	Time time.Time // when the modem accepted it
}

// StoredMessage is one occupied SM slot.
type StoredMessage struct {
	Index int
	Stat  int    // 0 received unread, 1 received read, 2 stored unsent, 3 stored sent
	PDU   []byte // SMSC field included
}

// prompt is an open AT+CMGS/AT+CMGW "> " input.
type prompt struct {
	write  bool // AT+CMGW: store instead of send
	length int  // announced TPDU length
	stat   int  // storage stat for AT+CMGW
}

// SentMessages returns copies of the messages sent so far, oldest first.
func (m *Modem) SentMessages() []SentMessage {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]SentMessage(nil), m.st.sent...)
}

// Stored returns the occupied SM slots in index order.
func (m *Modem) Stored() []StoredMessage {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []StoredMessage
	for i, s := range m.st.store {
		if s != nil {
			out = append(out, StoredMessage{Index: i, Stat: s.stat, PDU: append([]byte(nil), s.pdu...)})
		}
	}
	return out
}

// Pending reports how many MT messages the network still holds because
// the modem could not take them (SM full, no registration, powered off).
func (m *Modem) Pending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.st.pending)
}

// DeliverSMS hands an SMS-DELIVER to the network for this modem. pdu is
// hex as AT+CMGR prints it: SMSC field first, then the TPDU. It arrives at
// once when the modem is registered and has room, else it waits in the
// network like an SMSC retry.
func (m *Modem) DeliverSMS(pduHex string) error {
	b, err := decodeDeliver(pduHex)
	if err != nil {
		return fmt.Errorf("sim: deliver: %w", err)
	}
	m.deliver(b)
	return nil
}

// decodeDeliver checks that pduHex is an SMSC field plus an SMS-DELIVER.
func decodeDeliver(pduHex string) ([]byte, error) {
	b, err := hex.DecodeString(strings.TrimSpace(pduHex))
	if err != nil {
		return nil, fmt.Errorf("pdu hex: %w", err)
	}
	p, err := pdumode.UnmarshalBinary(b)
	if err != nil {
		return nil, fmt.Errorf("smsc field: %w", err)
	}
	t, err := sms.Unmarshal(p.TPDU, sms.AsMT)
	if err != nil {
		return nil, fmt.Errorf("tpdu: %w", err)
	}
	if t.SmsType() != tpdu.SmsDeliver {
		return nil, fmt.Errorf("%v is not an SMS-DELIVER", t.SmsType())
	}
	return b, nil
}

// DeliverRawPDU hands pduHex to the modem as an MT message without any
// check beyond being hex, so tests can deliver a corrupt PDU the way a
// faulty network or SMSC might. The <length> in +CMTI/+CMT/+CMGL is
// computed from the SMSC length octet as for any PDU.
func (m *Modem) DeliverRawPDU(pduHex string) error {
	b, err := hex.DecodeString(strings.TrimSpace(pduHex))
	if err != nil {
		return fmt.Errorf("sim: deliver raw: pdu hex: %w", err)
	}
	if len(b) == 0 {
		return errors.New("sim: deliver raw: empty PDU")
	}
	m.deliver(b)
	return nil
}

// DeliverText encodes text as SMS-DELIVER PDUs from the originator from
// (concatenated when it does not fit one) and delivers them.
func (m *Modem) DeliverText(from, text string) error {
	return m.DeliverParts(from, text)
}

// DeliverParts encodes text like DeliverText but delivers only the parts
// listed in order (numbered from 1), in that order; no order means all
// parts in sequence. Leaving a number out simulates a part the network
// lost, repeating one a duplicate.
func (m *Modem) DeliverParts(from, text string, order ...int) error {
	e := sms.NewEncoder(sms.AsDeliver, sms.From(from))
	e.ConcatRef = &m.concatRef
	tpdus, err := e.Encode([]byte(text))
	if err != nil {
		return fmt.Errorf("sim: deliver text: %w", err)
	}
	if len(order) == 0 {
		for i := range tpdus {
			order = append(order, i+1)
		}
	}
	for _, n := range order {
		if n < 1 || n > len(tpdus) {
			return fmt.Errorf("sim: deliver text: part %d of %d does not exist", n, len(tpdus))
		}
	}
	m.mu.Lock()
	smsc := pdumode.SMSCAddress{Address: tpdu.NewAddress(tpdu.FromNumber(m.st.csca))}
	m.mu.Unlock()
	now := time.Now()
	pdus := make([][]byte, len(tpdus))
	for i := range tpdus {
		tpdus[i].SCTS = tpdu.Timestamp{Time: now}
		tb, err := tpdus[i].MarshalBinary()
		if err != nil {
			return fmt.Errorf("sim: deliver text: marshal: %w", err)
		}
		pdus[i], err = (&pdumode.PDU{SMSC: smsc, TPDU: tb}).MarshalBinary()
		if err != nil {
			return fmt.Errorf("sim: deliver text: smsc: %w", err)
		}
	}
	for _, n := range order {
		m.deliver(pdus[n-1])
	}
	return nil
}

func (m *Modem) deliver(pdu []byte) {
	m.mu.Lock()
	m.st.pending = append(m.st.pending, pdu)
	var urcs []string
	if m.st.power == powerOn && m.st.registered() {
		urcs = m.flushPendingLocked()
	}
	m.mu.Unlock()
	m.emit(urcs...)
}

// flushPendingLocked moves MT messages from the network to the modem as
// far as storage allows. A full SM store leaves them pending silently: the
// real network retries later, and BG96 prints nothing for a refused SMS.
func (m *Modem) flushPendingLocked() []string {
	st := &m.st
	var urcs []string
	for len(st.pending) > 0 {
		pdu := st.pending[0]
		mt := st.cnmi[1]
		if mt == 2 {
			urcs = append(urcs, fmt.Sprintf("+CMT: ,%d\r\n%X", tpduLen(pdu), pdu))
		} else {
			i := st.freeSlot()
			if i < 0 {
				break
			}
			st.store[i] = &slot{stat: 0, pdu: pdu}
			if mt == 1 || mt == 3 {
				urcs = append(urcs, fmt.Sprintf(`+CMTI: "SM",%d`, i))
			}
		}
		st.pending = st.pending[1:]
	}
	return urcs
}

func (st *state) freeSlot() int {
	for i, s := range st.store {
		if s == nil {
			return i
		}
	}
	return -1
}

func (st *state) used() int {
	n := 0
	for _, s := range st.store {
		if s != nil {
			n++
		}
	}
	return n
}

// tpduLen is the octet count after the SMSC field, as <length> counts.
func tpduLen(pdu []byte) int {
	if len(pdu) == 0 {
		return 0
	}
	return max(len(pdu)-1-int(pdu[0]), 0)
}

func init() {
	register(cmgfHandler, "+CMGF")
	register(cnmiHandler, "+CNMI")
	register(cscaHandler, "+CSCA")
	register(cpmsHandler, "+CPMS")
	register(func(m *Modem, c command) resp { return m.openPromptLocked(c, false) }, "+CMGS")
	register(func(m *Modem, c command) resp { return m.openPromptLocked(c, true) }, "+CMGW")
	register(cmgrHandler, "+CMGR")
	register(cmglHandler, "+CMGL")
	register(cmgdHandler, "+CMGD")
}

func cmgfHandler(m *Modem, c command) resp {
	switch c.typ {
	case cmdRead:
		return resp{info: []string{fmt.Sprintf("+CMGF: %d", m.st.cmgf)}}
	case cmdTest:
		return resp{info: []string{"+CMGF: (0,1)"}}
	case cmdSet:
		// Text mode is accepted so hosts can switch, but every SMS command
		// then answers +CMS ERROR: 302: only PDU mode is emulated.
		if v, ok := intArg(c.args, 0, 0, 1, 0); ok && len(c.args) == 1 {
			m.st.cmgf = v
			return resp{}
		}
	}
	return errResp("ERROR")
}

func cnmiHandler(m *Modem, c command) resp {
	switch c.typ {
	case cmdRead:
		n := m.st.cnmi
		return resp{info: []string{fmt.Sprintf("+CNMI: %d,%d,%d,%d,%d", n[0], n[1], n[2], n[3], n[4])}}
	case cmdTest:
		return resp{info: []string{"+CNMI: (0-2),(0-3),(0,2),(0-2),(0,1)"}}
	case cmdSet:
		hi := [5]int{2, 3, 2, 2, 1}
		if len(c.args) > 5 {
			return errResp("ERROR")
		}
		n := m.st.cnmi
		for i := range c.args {
			v, ok := intArg(c.args, i, 0, hi[i], n[i])
			if !ok {
				return errResp(m.cmsLocked(302))
			}
			n[i] = v
		}
		m.st.cnmi = n
		var urcs []string
		if m.st.registered() {
			urcs = m.flushPendingLocked()
		}
		return resp{then: func() { m.emit(urcs...) }}
	}
	return errResp("ERROR")
}

func cscaHandler(m *Modem, c command) resp {
	switch c.typ {
	case cmdRead:
		return resp{info: []string{fmt.Sprintf("+CSCA: %q,%d", m.st.csca, m.st.cscaTOA)}}
	case cmdTest:
		return resp{}
	case cmdSet:
		num, quoted := unquote(c.args[0])
		if !quoted || len(c.args) > 2 || !validNumber(num) {
			return errResp("ERROR")
		}
		toa, ok := intArg(c.args, 1, 0, 255, toaFor(num))
		if !ok {
			return errResp("ERROR")
		}
		m.st.csca, m.st.cscaTOA = num, toa
		return resp{}
	}
	return errResp("ERROR")
}

func validNumber(s string) bool {
	s = strings.TrimPrefix(s, "+")
	if s == "" || len(s) > 20 {
		return false
	}
	return strings.Trim(s, "0123456789") == ""
}

func cpmsHandler(m *Modem, c command) resp {
	u, t := m.st.used(), len(m.st.store)
	switch c.typ {
	case cmdRead:
		return resp{info: []string{fmt.Sprintf(`+CPMS: "SM",%d,%d,"SM",%d,%d,"SM",%d,%d`, u, t, u, t, u, t)}}
	case cmdTest:
		return resp{info: []string{`+CPMS: ("SM"),("SM"),("SM")`}}
	case cmdSet:
		if len(c.args) > 3 {
			return errResp("ERROR")
		}
		for _, a := range c.args {
			// Only the SIM store exists here; ME/MT would need the separate
			// memories that caused the EC25 "SR" quirk (see CMGROnlyOK).
			if mem, _ := unquote(a); !strings.EqualFold(mem, "SM") {
				return errResp(m.cmsLocked(302))
			}
		}
		return resp{info: []string{fmt.Sprintf("+CPMS: %d,%d,%d,%d,%d,%d", u, t, u, t, u, t)}}
	}
	return errResp("ERROR")
}

func (m *Modem) openPromptLocked(c command, write bool) resp {
	if c.typ == cmdTest {
		return resp{}
	}
	if c.typ != cmdSet {
		return errResp("ERROR")
	}
	if m.st.cmgf != 0 {
		return errResp(m.cmsLocked(302))
	}
	n, ok := intArg(c.args, 0, 1, maxTPDU, 0)
	stat, ok2 := intArg(c.args, 1, 0, 3, 2)
	if !ok || !ok2 || n == 0 || len(c.args) > 2 || !write && len(c.args) > 1 {
		return errResp(m.cmsLocked(304))
	}
	m.st.prompt = &prompt{write: write, length: n, stat: stat}
	return resp{prompt: true}
}

// finishPrompt handles the PDU typed at the "> " prompt; abort is ESC.
func (m *Modem) finishPrompt(input string, abort bool) {
	m.mu.Lock()
	p := m.st.prompt
	m.st.prompt = nil
	if p == nil {
		m.mu.Unlock()
		return
	}
	m.commands.Add(1)
	var r resp
	if abort {
		// BG96 confirms an ESC abort with OK and sends nothing.
		r = resp{}
	} else {
		r = m.submitLocked(p, input)
	}
	m.mu.Unlock()
	m.writeResp(r)
	if r.then != nil {
		r.then()
	}
}

func (m *Modem) submitLocked(p *prompt, input string) resp {
	input = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == ' ' {
			return -1
		}
		return r
	}, input)
	pdu, t, err := parseSubmit(input, p.length)
	if err != nil {
		m.log.Debug("sim: rejected PDU", "err", err)
		return errResp(m.cmsLocked(304))
	}
	if p.write {
		i := m.st.freeSlot()
		if i < 0 {
			return errResp(m.cmsLocked(322))
		}
		m.st.store[i] = &slot{stat: p.stat, pdu: pdu}
		return resp{info: []string{fmt.Sprintf("+CMGW: %d", i)}}
	}
	if !m.st.registered() {
		return errResp(m.cmsLocked(331))
	}
	smsc := m.st.csca
	if len(pdu) > 0 && pdu[0] > 0 {
		var a pdumode.SMSCAddress
		if _, err := a.UnmarshalBinary(pdu); err == nil {
			smsc = a.Address.Number()
		}
	}
	if smsc == "" {
		return errResp(m.cmsLocked(330))
	}
	mr := m.st.mr
	m.st.mr = (m.st.mr + 1) % 256
	msg := SentMessage{MR: mr, PDU: pdu, TPDU: t, To: t.DA.Number(), SMSC: smsc, Time: time.Now()}
	if txt, err := sms.Decode([]*tpdu.TPDU{t}); err == nil {
		msg.Text = string(txt)
	}
	m.st.sent = append(m.st.sent, msg)
	if t.FirstOctet.SRR() && m.st.cnmi[3] != 0 {
		m.afterLocked(m.cfg.ReportDelay, func() { m.statusReport(msg) })
	}
	r := resp{info: []string{fmt.Sprintf("+CMGS: %d", mr)}}
	if cb := m.cfg.OnSubmit; cb != nil {
		cp := msg
		cp.PDU = append([]byte(nil), msg.PDU...)
		r.then = func() { cb(cp) }
	}
	return r
}

// parseSubmit validates what the host typed at the prompt: hex, an SMSC
// field, a TPDU of exactly the announced length, and an SMS-SUBMIT.
func parseSubmit(input string, length int) ([]byte, *tpdu.TPDU, error) {
	b, err := hex.DecodeString(input)
	if err != nil {
		return nil, nil, fmt.Errorf("pdu hex: %w", err)
	}
	p, err := pdumode.UnmarshalBinary(b)
	if err != nil {
		return nil, nil, fmt.Errorf("smsc field: %w", err)
	}
	if len(p.TPDU) != length {
		return nil, nil, fmt.Errorf("tpdu is %d octets, command announced %d", len(p.TPDU), length)
	}
	t, err := sms.Unmarshal(p.TPDU, sms.AsMO)
	if err != nil {
		return nil, nil, fmt.Errorf("tpdu: %w", err)
	}
	if t.SmsType() != tpdu.SmsSubmit {
		return nil, nil, errors.New("not an SMS-SUBMIT")
	}
	return b, t, nil
}

// statusReport is the network confirming delivery of msg: +CDS for
// CNMI ds=1, stored plus +CDSI for ds=2.
func (m *Modem) statusReport(msg SentMessage) {
	now := time.Now()
	sr := tpdu.TPDU{
		Direction:  tpdu.MT,
		FirstOctet: tpdu.FirstOctet(0).WithMTI(tpdu.MtCommand),
		MR:         byte(msg.MR),
		RA:         msg.TPDU.DA,
		SCTS:       tpdu.Timestamp{Time: msg.Time},
		DT:         tpdu.Timestamp{Time: now},
	}
	tb, err := sr.MarshalBinary()
	if err != nil {
		m.log.Warn("sim: status report", "err", err)
		return
	}
	m.mu.Lock()
	smsc := pdumode.SMSCAddress{Address: tpdu.NewAddress(tpdu.FromNumber(m.st.csca))}
	full, err := (&pdumode.PDU{SMSC: smsc, TPDU: tb}).MarshalBinary()
	if err != nil {
		m.mu.Unlock()
		m.log.Warn("sim: status report", "err", err)
		return
	}
	var urc string
	switch m.st.cnmi[3] {
	case 1:
		urc = fmt.Sprintf("+CDS: %d\r\n%X", len(tb), full)
	case 2:
		if i := m.st.freeSlot(); i >= 0 {
			m.st.store[i] = &slot{stat: 0, pdu: full}
			urc = fmt.Sprintf(`+CDSI: "SM",%d`, i)
		}
	}
	m.mu.Unlock()
	if urc != "" {
		m.emit(urc)
	}
}

func (m *Modem) smsIndexLocked(c command) (int, string) {
	if m.st.cmgf != 0 {
		return 0, m.cmsLocked(302)
	}
	if c.typ != cmdSet || len(c.args) == 0 {
		return 0, "ERROR"
	}
	i, ok := intArg(c.args, 0, 0, 1<<16, -1)
	if !ok || i < 0 {
		return 0, "ERROR"
	}
	if i >= len(m.st.store) {
		return 0, m.cmsLocked(321)
	}
	return i, ""
}

// cmgrHandler reads one slot. An empty slot inside the store answers a bare
// OK, as BG96 does; an index outside it is +CMS ERROR: 321.
func cmgrHandler(m *Modem, c command) resp {
	if c.typ == cmdTest {
		return resp{}
	}
	i, fail := m.smsIndexLocked(c)
	if fail != "" {
		return errResp(fail)
	}
	if len(c.args) > 2 {
		return errResp("ERROR")
	}
	s := m.st.store[i]
	if s == nil || m.flt.cmgrOnlyOK {
		return resp{}
	}
	info := []string{fmt.Sprintf("+CMGR: %d,,%d", s.stat, tpduLen(s.pdu)), fmt.Sprintf("%X", s.pdu)}
	if s.stat == 0 {
		s.stat = 1
	}
	return resp{info: info}
}

func cmglHandler(m *Modem, c command) resp {
	if m.st.cmgf != 0 {
		return errResp(m.cmsLocked(302))
	}
	switch c.typ {
	case cmdTest:
		return resp{info: []string{"+CMGL: (0-4)"}}
	case cmdRead:
		return errResp("ERROR")
	}
	want, ok := intArg(c.args, 0, 0, 4, 0)
	if !ok || len(c.args) > 2 {
		return errResp(m.cmsLocked(302))
	}
	var info []string
	for i, s := range m.st.store {
		if s == nil || want != 4 && s.stat != want {
			continue
		}
		info = append(info, fmt.Sprintf("+CMGL: %d,%d,,%d", i, s.stat, tpduLen(s.pdu)), fmt.Sprintf("%X", s.pdu))
		if s.stat == 0 {
			s.stat = 1
		}
	}
	return resp{info: info}
}

// cmgdHandler deletes per <delflag>: 0 the index, 1 all read, 2 read and
// sent, 3 read, sent and unsent, 4 everything. Freed space lets the
// network deliver what it held back.
func cmgdHandler(m *Modem, c command) resp {
	if c.typ == cmdTest {
		return resp{info: []string{fmt.Sprintf("+CMGD: (0-%d),(0-4)", len(m.st.store)-1)}}
	}
	i, fail := m.smsIndexLocked(c)
	if fail != "" {
		return errResp(fail)
	}
	flag, ok := intArg(c.args, 1, 0, 4, 0)
	if !ok || len(c.args) > 2 {
		return errResp("ERROR")
	}
	for j, s := range m.st.store {
		if s != nil && (flag == 0 && j == i || flag > 0 && deletes(flag, s.stat)) {
			m.st.store[j] = nil
		}
	}
	var urcs []string
	if m.st.registered() {
		urcs = m.flushPendingLocked()
	}
	return resp{then: func() { m.emit(urcs...) }}
}

// deletes reports whether AT+CMGD's <delflag> (1..4) removes a message
// with storage stat.
func deletes(flag, stat int) bool {
	switch flag {
	case 1:
		return stat == 1
	case 2:
		return stat == 1 || stat == 3
	case 3:
		return stat >= 1
	}
	return true
}
