package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cellagent/agent/bearer"
	"cellagent/agent/event"
	"cellagent/agent/messaging"
	"cellagent/agent/ratelimit"
	"cellagent/agent/store"
	"cellagent/agent/supervisor"
	"cellagent/transport/mqtt"
	"cellagent/transport/secret"
	"cellagent/transport/smscmd"
)

// smsCmdState is where the replay guard lives in the store.
const smsCmdState = "sms-commands"

// smsCommands runs signed commands that arrive by SMS (transport/smscmd).
// They come through the inbox like every MT message, so each is on disk
// before it is looked at; a text with the command tag never reaches
// sms/in, whether it verifies or not.
type smsCommands struct {
	key    []byte
	allow  map[string]bool
	events *ratelimit.Limiter // refusal events, not refusals

	mu           sync.Mutex // one command at a time: the guard is read, then written
	run, refused atomic.Uint64
}

// guard is the replay guard: the highest counter accepted, and the inbox
// id of its message, so the same message handed over again after a
// crash is recognised rather than reported as a replay.
type guard struct {
	Counter uint64 `json:"counter"`
	ID      string `json:"id"`
}

func (d *daemon) newSMSCommands() (*smsCommands, error) {
	c := d.cfg.SMSCommands
	if !c.Enabled {
		return nil, nil
	}
	raw, err := secret.Read(c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("agent: sms_commands.key_file: %w", err)
	}
	key, err := smscmd.ParseKey(raw)
	if err != nil {
		return nil, fmt.Errorf("agent: sms_commands.key_file: %w", err)
	}
	ev, err := ratelimit.New(ratelimit.Config{Global: []ratelimit.Window{{Period: c.EventEvery.Duration, Max: 1}}}, d.clock)
	if err != nil {
		return nil, fmt.Errorf("agent: sms_commands: %w", err)
	}
	s := &smsCommands{key: key, allow: map[string]bool{}, events: ev}
	for _, f := range c.AllowFrom {
		s.allow[number(f)] = true
	}
	return s, nil
}

// number compares phone numbers as the modem and the config may write
// them: without spaces and without a leading +.
func number(s string) string {
	return strings.TrimPrefix(strings.ReplaceAll(s, " ", ""), "+")
}

// smsCommand takes m if it is meant as a command: it verifies and runs
// it, or refuses it. It reports whether m was taken, so the caller
// publishes the others on sms/in. An error leaves m in the inbox for the
// next round.
func (d *daemon) smsCommand(ctx context.Context, m messaging.Inbound) (bool, error) {
	s := d.smsCmds
	if s == nil || !smscmd.LooksLike(m.Text) {
		return false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.allow[number(m.From)] {
		d.refuseSMSCommand("originator not allowed")
		return true, nil
	}
	b, err := d.st.LoadState("iccid")
	if err != nil || len(b) == 0 {
		d.refuseSMSCommand("ICCID not known yet")
		return true, nil
	}
	iccid := string(b)
	cmd, err := smscmd.Verify(s.key, iccid, m.Text)
	switch {
	case errors.Is(err, smscmd.ErrBadMAC):
		d.refuseSMSCommand("signature does not verify")
		return true, nil
	case err != nil:
		d.refuseSMSCommand("malformed")
		return true, nil
	case cmd.Kind != smscmd.Command:
		d.refuseSMSCommand("not a command")
		return true, nil
	}
	var last guard
	if b, err := d.st.LoadState(smsCmdState); err == nil {
		if err := json.Unmarshal(b, &last); err != nil {
			return false, fmt.Errorf("agent: sms command guard: %w", err)
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return false, fmt.Errorf("agent: sms command guard: %w", err)
	}
	if cmd.Counter <= last.Counter {
		if m.ID == last.ID {
			return true, nil // handled before a crash: at most once
		}
		d.refuseSMSCommand("replayed or out of order")
		return true, nil
	}
	// Saved before the command runs, so no crash can make it run twice.
	next, _ := json.Marshal(guard{Counter: cmd.Counter, ID: m.ID})
	if err := d.st.SaveState(smsCmdState, next); err != nil {
		return false, fmt.Errorf("agent: sms command guard: %w", err)
	}
	s.run.Add(1)
	result := d.runSMSCommand(ctx, cmd)
	d.event(event.Event{Type: event.SMSCommand, Level: event.Info, Msg: "SMS command " + cmd.Verb,
		Attrs: event.Attrs{"counter": cmd.Counter, "args": strings.Join(cmd.Args, " "), "result": strings.Join(result, " ")}})
	d.replySMSCommand(iccid, m.From, cmd, result)
	return true, nil
}

// refuseSMSCommand counts a refusal and reports it, at most once per
// event_every, never with the text: it may be anyone's.
func (d *daemon) refuseSMSCommand(why string) {
	s := d.smsCmds
	n := s.refused.Add(1)
	d.log.Warn("agent: SMS command refused", "reason", why, "refused", n)
	if s.events.Allow("refusal-events", 1) != nil {
		return
	}
	d.queueEvent(event.Event{Type: event.SMSCommand, Level: event.Warn, Msg: "SMS command refused",
		Attrs: event.Attrs{"reason": why, "refused": n}})
}

// runSMSCommand runs a verified command through the agent's Operations,
// as MQTT commands and the local API do, and says how it went in reply
// fields.
func (d *daemon) runSMSCommand(ctx context.Context, cmd smscmd.Message) []string {
	switch cmd.Verb {
	case "ping":
		return []string{"ok", "up=" + strconv.FormatInt(int64(d.now().Sub(d.started)/time.Second), 10)}
	case "status":
		d.PublishTelemetry()
		return append([]string{"ok"}, d.statusFields(ctx)...)
	case "mqtt-reconnect":
		if d.ReconnectMQTT() {
			return []string{"ok", "was=up"}
		}
		return []string{"ok", "was=down"}
	case "recover":
		if err := d.Recover(cmd.Args[0]); err != nil {
			return []string{"err", refusal(err)}
		}
		return []string{"ok", "queued"}
	}
	return []string{"err", "unknown"}
}

// refusal names why the ladder refused a step in one reply field.
func refusal(err error) string {
	msg := err.Error()
	for _, k := range []struct{ has, say string }{
		{"unknown step", "unknown-step"}, {"already scheduled", "already-scheduled"},
		{"requests already waiting", "busy"}, {"budget", "budget"}, {"less than", "too-soon"},
		{"not configured", "unavailable"}, {"unreachable", "unavailable"},
	} {
		if strings.Contains(msg, k.has) {
			return k.say
		}
	}
	return "refused"
}

// statusFields is the device's state in reply fields, read from where
// status.json reads it; statusReply formats them.
func (d *daemon) statusFields(ctx context.Context) []string {
	d.mu.Lock()
	st, at := d.modem, d.modemAt
	d.mu.Unlock()
	if st == nil || d.now().Sub(at) > d.tele.Load().poll {
		// Older than a telemetry round: worth the AT commands.
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		d.poll(qctx)
		cancel()
		d.mu.Lock()
		st, at = d.modem, d.modemAt
		d.mu.Unlock()
	}
	var v statusView
	if st != nil {
		t := sample(*st)
		v.modem, v.age = &t, d.now().Sub(at)
	}
	if d.sup != nil {
		snap := d.sup.Snapshot()
		v.ladder = &snap
	}
	if d.data.bearer != nil {
		b := d.data.bearer.Snapshot()
		v.bearer = &b
	}
	v.events, _ = d.st.Events().Len()
	v.telemetry, _ = d.st.Telemetry().Len()
	v.outbox, _ = d.st.OutboxLen()
	if c := d.client; c != nil {
		up := c.Stats().Connected
		v.mqtt = &up
	}
	return statusReply(v)
}

// statusView is what a status reply tells; nil parts are unknown or not
// configured and leave their fields out.
type statusView struct {
	modem *mqtt.Telemetry
	age   time.Duration // of the modem's reading
	// bearer is nil in [data] mode off, as in status.json.
	bearer                    *bearer.Snapshot
	ladder                    *supervisor.Snapshot
	events, telemetry, outbox int
	mqtt                      *bool
}

// statusReply is v in reply fields: registration, access technology,
// signal, packet attach, the data bearer (its state, and its interface
// when up), the reading's age, the ladder's state and step, the queue
// depths (events/telemetry/outbox) and MQTT, most telling first, since
// a reply too long for one SMS loses its tail.
func statusReply(v statusView) []string {
	var f []string
	var br []string
	if b := v.bearer; b != nil {
		s := field(string(b.State))
		if b.State == bearer.StateUp && b.Interface != "" {
			s += "/" + field(b.Interface)
		}
		br = []string{"br=" + s}
	}
	if t := v.modem; t == nil {
		f = append(f, "modem=unknown")
		f = append(f, br...)
	} else {
		reg := t.Reg.EPS
		if reg == "" {
			reg = t.Reg.PS
		}
		if reg == "" {
			reg = t.Reg.CS
		}
		f = append(f, "reg="+field(reg))
		if t.Act != "" {
			f = append(f, "act="+field(t.Act))
		}
		if t.RSSI != nil {
			f = append(f, fmt.Sprintf("rssi=%d", *t.RSSI))
		}
		if t.RSRP != nil {
			f = append(f, fmt.Sprintf("rsrp=%d", *t.RSRP))
		}
		if t.Attached != nil {
			f = append(f, "att="+map[bool]string{true: "1", false: "0"}[*t.Attached])
		}
		// The bearer before the reading's age: it is what a reply by SMS
		// is most often asked about.
		f = append(f, br...)
		f = append(f, fmt.Sprintf("age=%d", int64(v.age/time.Second)))
	}
	if l := v.ladder; l != nil {
		lad := field(string(l.State))
		if l.Step != "" {
			lad += "/" + field(l.Step)
		}
		f = append(f, "ladder="+lad)
	}
	f = append(f, fmt.Sprintf("q=%d/%d/%d", v.events, v.telemetry, v.outbox))
	if v.mqtt != nil {
		f = append(f, "mqtt="+map[bool]string{true: "up", false: "down"}[*v.mqtt])
	}
	return f
}

// field makes a value one reply field: what smscmd does not carry
// becomes "_".
func field(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 128 && smscmd.Token(string(r)) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}

// replySMSCommand signs the reply and hands it to the outbox, which
// stores it before it is sent and counts it against the SMS limits: a
// reply the limits refuse is not sent. Fields are dropped from the end
// until it fits one SMS.
func (d *daemon) replySMSCommand(iccid, to string, cmd smscmd.Message, result []string) {
	text, err := signReply(d.smsCmds.key, iccid, cmd, result)
	if err != nil {
		d.log.Error("agent: SMS command reply not signed", "verb", cmd.Verb, "err", err)
		return
	}
	id, _, err := d.outbox.Submit(messaging.Request{ID: "smscmd-" + strconv.FormatUint(cmd.Counter, 10), To: to, Text: text})
	if err != nil {
		d.log.Warn("agent: SMS command reply not sent", "verb", cmd.Verb, "err", err)
		return
	}
	d.log.Info("agent: SMS command reply queued", "verb", cmd.Verb, "id", id)
}

// signReply signs the reply to cmd, dropping fields from the end until
// it fits one SMS.
func signReply(key []byte, iccid string, cmd smscmd.Message, result []string) (string, error) {
	// A field longer than a token (a long string from the modem) is cut
	// rather than making the whole reply malformed.
	args := make([]string, len(result))
	for i, f := range result {
		if len(f) > smscmd.MaxToken {
			f = f[:smscmd.MaxToken]
		}
		args[i] = f
	}
	r := smscmd.Message{Kind: smscmd.Reply, Counter: cmd.Counter, Verb: cmd.Verb, Args: args}
	text, err := smscmd.Sign(key, iccid, r)
	for errors.Is(err, smscmd.ErrTooLong) && len(r.Args) > 1 {
		r.Args = r.Args[:len(r.Args)-1]
		text, err = smscmd.Sign(key, iccid, r)
	}
	return text, err
}
