package bg96emu

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"
)

// A Scenario is a timed script that drives a Modem. The text format is
// line based; '#' starts a comment (outside quotes):
//
//	seed <n>                 seed for ranges (default 1)
//	loop <dur>               restart the "at" timeline every <dur>
//	at <dur> <action>        run once at <dur> after the start (of each loop)
//	every <dur> <action>     run at <dur>, 2*<dur>, ... until the end
//
// Durations use Go syntax (0s, 2s, 1m30s). Actions and their key=value
// arguments (values may be "quoted" with Go escapes):
//
//	signal [act=NOSERVICE|GSM|CAT-M1|CAT-NB1] [rssi=] [rsrp=] [sinr=] [rsrq=]
//	register domain=cs|ps|eps|all stat=<0-5|notsearching|home|searching|denied|unknown|roaming>
//	         [tac=|lac=<hex>] [ci=<hex>] [act=<0|8|9|GSM|CAT-M1|CAT-NB1>]
//	sms from=<number> text=<text>  |  sms pdu=<hex, SMSC field first>
//	fault cme cmd=<cmd> code=<n>   |  fault cms cmd=<cmd> code=<n>
//	fault delay cmd=<cmd> for=<dur>|  fault hangup for=<dur>
//	fault silence on|off           |  fault cmgr-ok on|off  |  fault urc-inside on|off
//	fault garbage hex=<hex>|text=<text>  |  fault truncate  |  fault stopafter n=<n>
//	fault clear
//	reboot                         |  poweroff
//	network apn=<apn>|any          the only APN the network activates (a
//	                               wrong one: ATD gets NO CARRIER, +CEER says why)
//	pin code=<pin> attempts=<n>    the SIM asks for its PIN from the next power-up
//
// Signal values are integers (dBm, SINR in dB) or ranges lo..hi: a range
// takes a random value the first time and then walks randomly within it,
// which suits "every". Omitted signal keys keep their previous value.
type Scenario struct {
	Seed   uint64
	Loop   time.Duration
	Events []Event
}

// Event is one "at" or "every" line.
type Event struct {
	Line  int           // line number in the source
	At    time.Duration // offset of an "at" event
	Every time.Duration // period of an "every" event (0 for "at")
	Text  string        // the action as written
	act   action
}

type action func(m *Modem, w *walker) error

// walker holds the random state for ranges, per event and key.
type walker struct {
	rng  *rand.Rand
	last map[string]int
}

type intRange struct{ lo, hi int }

func (w *walker) value(key string, r intRange) int {
	if r.lo == r.hi {
		return r.lo
	}
	span := r.hi - r.lo
	v, ok := w.last[key]
	if !ok {
		v = r.lo + w.rng.IntN(span+1)
	} else {
		step := max(span/4, 1)
		v = min(max(v+w.rng.IntN(2*step+1)-step, r.lo), r.hi)
	}
	w.last[key] = v
	return v
}

// ParseScenario reads a scenario; errors name the line and the problem.
func ParseScenario(r io.Reader) (*Scenario, error) {
	sc := &Scenario{Seed: 1}
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 4096), 64*1024)
	n := 0
	var lastAt time.Duration
	for s.Scan() {
		n++
		toks, err := tokenize(s.Text())
		if err != nil {
			return nil, fmt.Errorf("scenario line %d: %w", n, err)
		}
		if len(toks) == 0 {
			continue
		}
		if err := sc.parseLine(n, toks); err != nil {
			return nil, fmt.Errorf("scenario line %d: %w", n, err)
		}
		if ev := sc.Events; len(ev) > 0 && ev[len(ev)-1].Line == n && ev[len(ev)-1].Every == 0 {
			lastAt = max(lastAt, ev[len(ev)-1].At)
		}
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("scenario line %d: %w", n+1, err)
	}
	if sc.Loop > 0 && lastAt >= sc.Loop {
		return nil, fmt.Errorf("scenario: loop %v must be longer than the last at (%v)", sc.Loop, lastAt)
	}
	sort.SliceStable(sc.Events, func(i, j int) bool { return sc.Events[i].At < sc.Events[j].At })
	return sc, nil
}

func (sc *Scenario) parseLine(n int, toks []string) error {
	switch toks[0] {
	case "seed":
		if len(toks) != 2 {
			return errors.New("seed wants one number")
		}
		v, err := strconv.ParseUint(toks[1], 10, 64)
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		sc.Seed = v
		return nil
	case "loop":
		if len(toks) != 2 {
			return errors.New("loop wants one duration")
		}
		d, err := parseDur(toks[1])
		if err != nil || d <= 0 {
			return fmt.Errorf("loop: bad duration %q", toks[1])
		}
		sc.Loop = d
		return nil
	case "at", "every":
		if len(toks) < 3 {
			return fmt.Errorf("%s wants a duration and an action", toks[0])
		}
		d, err := parseDur(toks[1])
		if err != nil {
			return fmt.Errorf("%s: %w", toks[0], err)
		}
		ev := Event{Line: n, Text: strings.Join(toks[2:], " ")}
		if toks[0] == "every" {
			if d <= 0 {
				return errors.New("every: period must be positive")
			}
			ev.Every = d
		} else {
			ev.At = d
		}
		ev.act, err = parseAction(toks[2], toks[3:])
		if err != nil {
			return err
		}
		sc.Events = append(sc.Events, ev)
		return nil
	}
	return fmt.Errorf("unknown directive %q (want at, every, loop or seed)", toks[0])
}

func parseDur(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration %q", s)
	}
	return d, nil
}

// tokenize splits on blanks, keeping key="quoted value" together and
// dropping a '#' comment.
func tokenize(line string) ([]string, error) {
	var toks []string
	var cur strings.Builder
	inTok := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '#':
			i = len(line)
		case c == ' ' || c == '\t' || c == '\r':
			if inTok {
				toks = append(toks, cur.String())
				cur.Reset()
				inTok = false
			}
		case c == '"':
			q, err := strconv.QuotedPrefix(line[i:])
			if err != nil {
				return nil, fmt.Errorf("bad quoted string at column %d", i+1)
			}
			v, err := strconv.Unquote(q)
			if err != nil {
				return nil, fmt.Errorf("bad quoted string at column %d", i+1)
			}
			cur.WriteString(v)
			inTok = true
			i += len(q) - 1
		default:
			cur.WriteByte(c)
			inTok = true
		}
	}
	if inTok {
		toks = append(toks, cur.String())
	}
	return toks, nil
}

// kv splits key=value arguments, rejecting keys outside allowed.
func kv(args []string, allowed ...string) (map[string]string, error) {
	out := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return nil, fmt.Errorf("argument %q is not key=value", a)
		}
		found := false
		for _, al := range allowed {
			found = found || k == al
		}
		if !found {
			return nil, fmt.Errorf("unknown key %q (want %s)", k, strings.Join(allowed, ", "))
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("key %q given twice", k)
		}
		out[k] = v
	}
	return out, nil
}

func parseAction(name string, args []string) (action, error) {
	switch name {
	case "signal":
		return parseSignal(args)
	case "register":
		return parseRegister(args)
	case "sms":
		return parseSMS(args)
	case "fault":
		return parseFault(args)
	case "network":
		// network apn=<apn>: the only APN the network activates; apn=any
		// accepts every APN again.
		a, err := kv(args, "apn")
		if err != nil || a["apn"] == "" {
			return nil, fmt.Errorf("network: want apn=<apn> or apn=any")
		}
		apn := a["apn"]
		if apn == "any" {
			apn = ""
		}
		return func(m *Modem, _ *walker) error { m.SetAcceptedAPN(apn); return nil }, nil
	case "pin":
		// pin code=<pin> attempts=<n>: the SIM asks for its PIN from the
		// next power-up.
		a, err := kv(args, "code", "attempts")
		if err != nil {
			return nil, fmt.Errorf("pin: %w", err)
		}
		n, err := strconv.Atoi(a["attempts"])
		if err != nil || n < 0 || n > 10 || a["code"] == "" {
			return nil, fmt.Errorf("pin: want code=<digits> attempts=0..10")
		}
		return func(m *Modem, _ *walker) error { m.SetPIN(a["code"], n); return nil }, nil
	case "reboot", "poweroff":
		if len(args) != 0 {
			return nil, fmt.Errorf("%s takes no arguments", name)
		}
		if name == "reboot" {
			return func(m *Modem, _ *walker) error { m.Reboot(); return nil }, nil
		}
		return func(m *Modem, _ *walker) error { m.PowerOff(); return nil }, nil
	}
	return nil, fmt.Errorf("unknown action %q", name)
}

func parseRange(k, s string) (intRange, error) {
	lo, hi, isRange := strings.Cut(s, "..")
	a, err1 := strconv.Atoi(lo)
	b := a
	var err2 error
	if isRange {
		b, err2 = strconv.Atoi(hi)
	}
	if err1 != nil || err2 != nil || a < -200 || b > 300 || a > b {
		return intRange{}, fmt.Errorf("%s: want an integer or lo..hi within -200..300, got %q", k, s)
	}
	return intRange{a, b}, nil
}

func parseSignal(args []string) (action, error) {
	kvs, err := kv(args, "act", "rssi", "rsrp", "sinr", "rsrq")
	if err != nil {
		return nil, fmt.Errorf("signal: %w", err)
	}
	act, hasAct := kvs["act"]
	if hasAct {
		act = strings.ToUpper(act)
		switch act {
		case "NOSERVICE", "GSM", "CAT-M1", "CAT-NB1":
		default:
			return nil, fmt.Errorf("signal: act %q (want NOSERVICE, GSM, CAT-M1 or CAT-NB1)", kvs["act"])
		}
	}
	ranges := map[string]intRange{}
	for _, k := range []string{"rssi", "rsrp", "sinr", "rsrq"} {
		if v, ok := kvs[k]; ok {
			if ranges[k], err = parseRange(k, v); err != nil {
				return nil, fmt.Errorf("signal: %w", err)
			}
		}
	}
	return func(m *Modem, w *walker) error {
		m.mu.Lock()
		s := m.st.sig
		m.mu.Unlock()
		if hasAct {
			s.Act = act
		}
		fields := map[string]*int{"rssi": &s.RSSI, "rsrp": &s.RSRP, "sinr": &s.SINR, "rsrq": &s.RSRQ}
		for k, r := range ranges {
			*fields[k] = w.value(k, r)
		}
		return m.SetSignal(s)
	}, nil
}

var statNames = map[string]int{
	"notsearching": NotSearching, "home": Home, "searching": Searching,
	"denied": Denied, "unknown": Unknown, "roaming": Roaming,
}

var actNames = map[string]int{"GSM": ActGSM, "CAT-M1": ActEMTC, "EMTC": ActEMTC, "CAT-NB1": ActNBIoT, "NBIOT": ActNBIoT}

func parseRegister(args []string) (action, error) {
	kvs, err := kv(args, "domain", "stat", "tac", "lac", "ci", "act")
	if err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	d, err := ParseDomain(kvs["domain"])
	if err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	var r Registration
	st, ok := statNames[strings.ToLower(kvs["stat"])]
	if !ok {
		st, err = strconv.Atoi(kvs["stat"])
		if err != nil || st < NotSearching || st > Roaming {
			return nil, fmt.Errorf("register: stat %q (want 0-5 or home, searching, ...)", kvs["stat"])
		}
	}
	r.Stat = st
	if kvs["tac"] != "" && kvs["lac"] != "" {
		return nil, errors.New("register: give tac or lac, not both")
	}
	r.Area = strings.ToUpper(kvs["tac"] + kvs["lac"])
	r.Cell = strings.ToUpper(kvs["ci"])
	if !isHex(r.Area, 4) || !isHex(r.Cell, 8) {
		return nil, errors.New("register: tac/lac wants up to 4 hex digits, ci up to 8")
	}
	if a, ok := kvs["act"]; ok {
		if r.AcT, ok = actNames[strings.ToUpper(a)]; !ok {
			if r.AcT, err = strconv.Atoi(a); err != nil || (r.AcT != 0 && r.AcT != 8 && r.AcT != 9) {
				return nil, fmt.Errorf("register: act %q (want 0, 8, 9, GSM, CAT-M1 or CAT-NB1)", a)
			}
		}
	} else if r.Area != "" {
		r.AcT = ActEMTC
	}
	return func(m *Modem, _ *walker) error { return m.SetRegistration(d, r) }, nil
}

func isHex(s string, maxLen int) bool {
	if len(s) > maxLen {
		return false
	}
	_, err := hex.DecodeString(strings.Repeat("0", len(s)%2) + s)
	return err == nil
}

func parseSMS(args []string) (action, error) {
	kvs, err := kv(args, "from", "text", "pdu")
	if err != nil {
		return nil, fmt.Errorf("sms: %w", err)
	}
	if pdu, ok := kvs["pdu"]; ok {
		if len(kvs) != 1 {
			return nil, errors.New("sms: pdu excludes from and text")
		}
		// Validate now so a bad PDU fails the parse, not the demo.
		if _, err := decodeDeliver(pdu); err != nil {
			return nil, fmt.Errorf("sms: %w", err)
		}
		return func(m *Modem, _ *walker) error { return m.DeliverSMS(pdu) }, nil
	}
	from, text := kvs["from"], kvs["text"]
	if !validNumber(from) {
		return nil, fmt.Errorf("sms: from %q is not a phone number", from)
	}
	if _, ok := kvs["text"]; !ok {
		return nil, errors.New("sms: wants text= (with from=) or pdu=")
	}
	return func(m *Modem, _ *walker) error { return m.DeliverText(from, text) }, nil
}

func onOff(args []string) (bool, error) {
	if len(args) != 1 || args[0] != "on" && args[0] != "off" {
		return false, errors.New("wants on or off")
	}
	return args[0] == "on", nil
}

func parseFault(args []string) (action, error) {
	if len(args) == 0 {
		return nil, errors.New("fault: wants a kind")
	}
	kind, rest := args[0], args[1:]
	fail := func(err error) (action, error) { return nil, fmt.Errorf("fault %s: %w", kind, err) }
	switch kind {
	case "silence", "cmgr-ok", "urc-inside":
		on, err := onOff(rest)
		if err != nil {
			return fail(err)
		}
		f := map[string]func(*Modem, bool){
			"silence": (*Modem).Silence, "cmgr-ok": (*Modem).CMGROnlyOK, "urc-inside": (*Modem).URCsInsideResponse,
		}[kind]
		return func(m *Modem, _ *walker) error { f(m, on); return nil }, nil
	case "clear", "truncate":
		if len(rest) != 0 {
			return fail(errors.New("takes no arguments"))
		}
		if kind == "clear" {
			return func(m *Modem, _ *walker) error { m.ClearFaults(); return nil }, nil
		}
		return func(m *Modem, _ *walker) error { m.TruncateNext(); return nil }, nil
	}
	kvs, err := kv(rest, "cmd", "code", "for", "n", "hex", "text")
	if err != nil {
		return fail(err)
	}
	need := func(keys ...string) error {
		if len(kvs) != len(keys) {
			return fmt.Errorf("wants exactly %s", strings.Join(keys, ", "))
		}
		for _, k := range keys {
			if _, ok := kvs[k]; !ok {
				return fmt.Errorf("wants %s=", k)
			}
		}
		return nil
	}
	switch kind {
	case "cme", "cms":
		if err := need("cmd", "code"); err != nil {
			return fail(err)
		}
		code, err := strconv.Atoi(kvs["code"])
		if err != nil || code < 0 || code > 999 || kvs["cmd"] == "" {
			return fail(fmt.Errorf("bad cmd %q or code %q", kvs["cmd"], kvs["code"]))
		}
		cmd := kvs["cmd"]
		if kind == "cme" {
			return func(m *Modem, _ *walker) error { return m.CMEErrorOn(cmd, code) }, nil
		}
		return func(m *Modem, _ *walker) error { return m.CMSErrorOn(cmd, code) }, nil
	case "delay", "hangup":
		keys := []string{"for"}
		if kind == "delay" {
			keys = append(keys, "cmd")
		}
		if err := need(keys...); err != nil {
			return fail(err)
		}
		d, err := parseDur(kvs["for"])
		if err != nil {
			return fail(err)
		}
		if kind == "hangup" {
			return func(m *Modem, _ *walker) error { return m.HangUp(d) }, nil
		}
		cmd := kvs["cmd"]
		return func(m *Modem, _ *walker) error { m.DelayCommand(cmd, d); return nil }, nil
	case "stopafter":
		if err := need("n"); err != nil {
			return fail(err)
		}
		n, err := strconv.Atoi(kvs["n"])
		if err != nil || n < 0 {
			return fail(fmt.Errorf("bad n %q", kvs["n"]))
		}
		return func(m *Modem, _ *walker) error { return m.StopAfter(n) }, nil
	case "garbage":
		var b []byte
		switch {
		case len(kvs) != 1:
			return fail(errors.New("wants exactly one of hex= or text="))
		case kvs["hex"] != "":
			if b, err = hex.DecodeString(kvs["hex"]); err != nil {
				return fail(err)
			}
		default:
			b = []byte(kvs["text"])
		}
		return func(m *Modem, _ *walker) error { m.Garbage(b); return nil }, nil
	}
	return fail(errors.New("unknown fault kind"))
}

// Run plays sc against m until the script ends (no loop and no "every"),
// or ctx is done. An action that fails stops the run with its line number.
func (m *Modem) Run(ctx context.Context, sc *Scenario) error {
	rng := rand.New(rand.NewPCG(sc.Seed, sc.Seed^0x9e3779b97f4a7c15))
	walkers := make([]*walker, len(sc.Events))
	for i := range walkers {
		walkers[i] = &walker{rng: rng, last: map[string]int{}}
	}
	var ats, everys []int
	for i, ev := range sc.Events {
		if ev.Every > 0 {
			everys = append(everys, i)
		} else {
			ats = append(ats, i)
		}
	}
	nextEvery := make([]time.Duration, len(everys))
	for j, i := range everys {
		nextEvery[j] = sc.Events[i].Every
	}
	start := time.Now()
	atPos, pass := 0, time.Duration(0)
	for {
		if atPos == len(ats) && sc.Loop > 0 && len(ats) > 0 {
			atPos, pass = 0, pass+sc.Loop
		}
		best, bestT, bestEvery := -1, time.Duration(0), -1
		if atPos < len(ats) {
			best, bestT = ats[atPos], pass+sc.Events[ats[atPos]].At
		}
		for j, i := range everys {
			if best < 0 || nextEvery[j] < bestT {
				best, bestT, bestEvery = i, nextEvery[j], j
			}
		}
		if best < 0 {
			return nil
		}
		tm := time.NewTimer(time.Until(start.Add(bestT)))
		select {
		case <-ctx.Done():
			tm.Stop()
			return ctx.Err()
		case <-tm.C:
		}
		if bestEvery >= 0 {
			nextEvery[bestEvery] += sc.Events[best].Every
		} else {
			atPos++
		}
		ev := sc.Events[best]
		m.log.Info("sim: scenario", "line", ev.Line, "action", ev.Text)
		if err := ev.act(m, walkers[best]); err != nil {
			return fmt.Errorf("scenario line %d: %w", ev.Line, err)
		}
	}
}
