package mqtt

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"cellagent/transport/mqtt/mqtttest"
)

func TestParseCommand(t *testing.T) {
	long := strings.Repeat("a", MaxSMSText+1)
	tests := []struct {
		name, cmd, payload string
		wantErr, wantID    string // wantErr: substring; wantID: id in the error
		check              func(Command) bool
	}{
		{name: "status", cmd: CmdStatus, payload: `{"id":"s1"}`, check: func(c Command) bool { return c.ID == "s1" && c.Expires.IsZero() }},
		{name: "status with exp", cmd: CmdStatus, payload: `{"id":"s1","exp":1700000000}`, check: func(c Command) bool { return c.Expires.Unix() == 1700000000 }},
		{name: "sms text", cmd: CmdSMSSend, payload: `{"id":"m1","to":"+491701234567","text":"Grüße\nzurück","report":true}`,
			check: func(c Command) bool {
				s := c.SMS
				return s.ID == "m1" && s.To == "+491701234567" && s.Text == "Grüße\nzurück" && s.Report && s.Data == nil
			}},
		{name: "sms hex", cmd: CmdSMSSend, payload: `{"id":"m2","to":"5432145","hex":"00ff10"}`,
			check: func(c Command) bool { return string(c.SMS.Data) == "\x00\xff\x10" && c.SMS.Text == "" }},
		{name: "recover", cmd: CmdRecover, payload: ` {"step":"cfun-reset","id":"r1"} `, check: func(c Command) bool { return c.Step == "cfun-reset" }},

		{name: "unknown command", cmd: "reboot", payload: `{"id":"x"}`, wantErr: "unknown command"},
		{name: "too big", cmd: CmdStatus, payload: `{"id":"` + strings.Repeat("x", 5000) + `"}`, wantErr: "exceeds"},
		{name: "not json", cmd: CmdStatus, payload: `hello`, wantErr: "JSON object"},
		{name: "array", cmd: CmdStatus, payload: `[{"id":"a"}]`, wantErr: "JSON object"},
		{name: "empty", cmd: CmdStatus, payload: ``, wantErr: "JSON object"},
		{name: "bad utf8", cmd: CmdStatus, payload: "{\"id\":\"a\xff\"}", wantErr: "UTF-8"},
		{name: "trailing data", cmd: CmdStatus, payload: `{"id":"a"} {"id":"b"}`, wantErr: "after the JSON", wantID: "a"},
		{name: "truncated", cmd: CmdStatus, payload: `{"id":"a"`, wantErr: "malformed", wantID: "a"},
		{name: "unknown field", cmd: CmdStatus, payload: `{"id":"a","force":true}`, wantErr: `unknown field "force"`, wantID: "a"},
		{name: "duplicate field", cmd: CmdStatus, payload: `{"id":"a","id":"b"}`, wantErr: "duplicate", wantID: "a"},
		{name: "nested", cmd: CmdRecover, payload: `{"id":"a","step":{"x":1}}`, wantErr: "string, number or boolean", wantID: "a"},
		{name: "null", cmd: CmdStatus, payload: `{"id":null}`, wantErr: "string, number or boolean"},
		{name: "missing id", cmd: CmdStatus, payload: `{}`, wantErr: `missing field "id"`},
		{name: "bad id", cmd: CmdStatus, payload: `{"id":"a/b"}`, wantErr: "id:"},
		{name: "id not string", cmd: CmdStatus, payload: `{"id":5}`, wantErr: "must be a string"},
		{name: "exp string", cmd: CmdStatus, payload: `{"id":"a","exp":"soon"}`, wantErr: "exp", wantID: "a"},
		{name: "exp fraction", cmd: CmdStatus, payload: `{"id":"a","exp":1.5}`, wantErr: "exp", wantID: "a"},
		{name: "exp negative", cmd: CmdStatus, payload: `{"id":"a","exp":-1}`, wantErr: "exp", wantID: "a"},
		{name: "sms no body", cmd: CmdSMSSend, payload: `{"id":"a","to":"12345"}`, wantErr: "exactly one", wantID: "a"},
		{name: "sms both", cmd: CmdSMSSend, payload: `{"id":"a","to":"12345","text":"x","hex":"00"}`, wantErr: "exactly one", wantID: "a"},
		{name: "sms bad to", cmd: CmdSMSSend, payload: `{"id":"a","to":"+49 170","text":"x"}`, wantErr: "to", wantID: "a"},
		{name: "sms short to", cmd: CmdSMSSend, payload: `{"id":"a","to":"12","text":"x"}`, wantErr: "to", wantID: "a"},
		{name: "sms missing to", cmd: CmdSMSSend, payload: `{"id":"a","text":"x"}`, wantErr: `missing field "to"`, wantID: "a"},
		{name: "sms empty text", cmd: CmdSMSSend, payload: `{"id":"a","to":"12345","text":""}`, wantErr: "characters", wantID: "a"},
		{name: "sms long text", cmd: CmdSMSSend, payload: `{"id":"a","to":"12345","text":"` + long + `"}`, wantErr: "characters", wantID: "a"},
		{name: "sms control", cmd: CmdSMSSend, payload: `{"id":"a","to":"12345","text":"a\u0007b"}`, wantErr: "control", wantID: "a"},
		{name: "sms odd hex", cmd: CmdSMSSend, payload: `{"id":"a","to":"12345","hex":"abc"}`, wantErr: "hex", wantID: "a"},
		{name: "sms bad hex", cmd: CmdSMSSend, payload: `{"id":"a","to":"12345","hex":"zz"}`, wantErr: "hex", wantID: "a"},
		{name: "sms report string", cmd: CmdSMSSend, payload: `{"id":"a","to":"12345","text":"x","report":"yes"}`, wantErr: "report", wantID: "a"},
		{name: "recover no step", cmd: CmdRecover, payload: `{"id":"a"}`, wantErr: `missing field "step"`, wantID: "a"},
		{name: "recover bad step", cmd: CmdRecover, payload: `{"id":"a","step":"Reset Modem"}`, wantErr: "step", wantID: "a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd, err := ParseCommand(tc.cmd, []byte(tc.payload), 0)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				if cmd.Name != tc.cmd || !tc.check(cmd) {
					t.Fatalf("command = %+v", cmd)
				}
				return
			}
			var ce *CommandError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T), want *CommandError", err, err)
			}
			if !strings.Contains(ce.Reason, tc.wantErr) || ce.ID != tc.wantID {
				t.Fatalf("error %q id %q, want %q id %q", ce.Reason, ce.ID, tc.wantErr, tc.wantID)
			}
		})
	}
}

func TestBucket(t *testing.T) {
	b := perMinute(60, 2)
	t0 := time.Unix(1000, 0)
	for i, want := range []bool{true, true, false} {
		if got := b.AllowN(t0, 1); got != want {
			t.Fatalf("take %d = %v", i, got)
		}
	}
	if b.AllowN(t0.Add(500*time.Millisecond), 1) {
		t.Fatal("half a token was enough")
	}
	if !b.AllowN(t0.Add(1600*time.Millisecond), 1) {
		t.Fatal("no token after a second")
	}
	later := t0.Add(time.Hour)
	for i, want := range []bool{true, true, false} {
		if got := b.AllowN(later, 1); got != want {
			t.Fatalf("burst not capped at 2: take %d after an hour = %v", i, got)
		}
	}
}

// A command on another device's topic is dropped before it is parsed,
// whatever routed it here.
func TestCommandForOtherDeviceIgnored(t *testing.T) {
	called := false
	c, err := New(Options{
		Conn: Conn{Broker: "tls://broker.example:8883"}, DeviceID: "dev1",
		Ordered: Adapt(&memQueue{}), Telemetry: Adapt(&memQueue{}),
		Commands: Commands{Enabled: true, Handlers: Handlers{Status: func(context.Context) error { called = true; return nil }}},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &session{lost: make(chan struct{})}
	close(s.lost) // offline: nothing may be published
	for _, topic := range []string{
		"cellagent/v1/dev2/cmd/status", "cellagent/v1/dev1/cmd/status/result",
		"other/v1/dev1/cmd/status", "cellagent/v1/dev1/cmd/recover",
	} {
		c.cmds.receive(s, topic, []byte(`{"id":"x"}`), false)
	}
	if len(c.cmds.in) != 0 || called || c.cmds.refused.Load() != 0 {
		t.Fatalf("queued %d, called %v, refused %d", len(c.cmds.in), called, c.cmds.refused.Load())
	}
	c.cmds.receive(s, "cellagent/v1/dev1/cmd/status", []byte(`{"id":"x"}`), false)
	if len(c.cmds.in) != 1 {
		t.Fatal("own command not queued")
	}
}

func TestCommandsOverBroker(t *testing.T) {
	t.Parallel()
	b := mqtttest.Start(t, mqtttest.Options{})
	calls := make(chan string, 20)
	r := newRig(t, b, func(o *Options) {
		o.Commands = Commands{
			Enabled: true, PerMinute: 1, Burst: 4, AllowTo: []string{"+491701234567", "5432145"},
			Handlers: Handlers{
				SendSMS: func(_ context.Context, req SMSRequest) error {
					calls <- "sms " + req.ID + " " + req.To + " " + req.Text
					return nil
				},
				Status: func(context.Context) error { calls <- "status"; return nil },
				Recover: func(_ context.Context, step string) error {
					calls <- "recover " + step
					return errors.New("no such step: " + step)
				},
			},
		}
	})
	w := watch(t, b, watchOpts{id: "ops", clean: true}, "test/v1/+/cmd/#")
	waitFor(t, 5*time.Second, "online", func() bool { return r.c.Stats().Connected })
	isResult := func(m msg) bool { return strings.HasSuffix(m.topic, "/result") }
	send := func(dev, name, payload string) {
		t.Helper()
		if tok := w.cli.Publish("test/v1/"+dev+"/cmd/"+name, 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	expect := func(name string, want CommandResult) {
		t.Helper()
		m := w.next(t, 5*time.Second, isResult)
		got := decode[CommandResult](t, m.payload)
		if m.topic != "test/v1/dev1/cmd/"+name+"/result" || got.ID != want.ID || got.OK != want.OK || !strings.Contains(got.Error, want.Error) || got.V != 1 || got.TS == 0 {
			t.Fatalf("result on %s = %+v, want %+v", m.topic, got, want)
		}
	}
	call := func(want string) {
		t.Helper()
		select {
		case got := <-calls:
			if got != want {
				t.Fatalf("handler call %q, want %q", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("handler not called for %q", want)
		}
	}

	send("dev1", CmdStatus, `{"id":"s1"}`)
	expect(CmdStatus, CommandResult{ID: "s1", OK: true})
	call("status")

	send("dev1", CmdSMSSend, `{"id":"m1","to":"+491701234567","text":"hi"}`)
	expect(CmdSMSSend, CommandResult{ID: "m1", OK: true})
	call("sms m1 +491701234567 hi")

	// A redelivery gets the same answer and does not send twice.
	send("dev1", CmdSMSSend, `{"id":"m1","to":"+491701234567","text":"hi"}`)
	expect(CmdSMSSend, CommandResult{ID: "m1", OK: true})

	send("dev1", CmdSMSSend, `{"id":"m2","to":"x","text":"hi"}`)
	expect(CmdSMSSend, CommandResult{ID: "m2", Error: "to"})
	send("dev1", CmdSMSSend, `{"id":"m3","to":"+15550100","text":"hi"}`)
	expect(CmdSMSSend, CommandResult{ID: "m3", Error: "allow-list"})
	send("dev1", CmdStatus, `not json`)
	expect(CmdStatus, CommandResult{Error: "JSON object"})
	send("dev1", CmdStatus, `{"id":"e1","exp":1}`)
	expect(CmdStatus, CommandResult{ID: "e1", Error: "expired"})

	send("dev1", CmdRecover, `{"id":"r1","step":"bogus"}`)
	expect(CmdRecover, CommandResult{ID: "r1", Error: "no such step: bogus"})
	call("recover bogus")

	// Another gateway's command gets no answer and runs nothing here.
	send("dev2", CmdStatus, `{"id":"o1"}`)
	w.quiet(t, 300*time.Millisecond, isResult)

	// Burst 4: s1, m1, r1 and this one; the next is refused.
	send("dev1", CmdStatus, `{"id":"s2"}`)
	expect(CmdStatus, CommandResult{ID: "s2", OK: true})
	call("status")
	send("dev1", CmdStatus, `{"id":"s3"}`)
	expect(CmdStatus, CommandResult{ID: "s3", Error: "rate limited"})

	select {
	case c := <-calls:
		t.Fatalf("unexpected handler call %q", c)
	default:
	}
	if st := r.c.Stats(); st.CommandsDone != 4 || st.CommandsRefused != 5 {
		t.Fatalf("stats = %+v", st)
	}
}

// The broker keeps the device's session, subscriptions included: a run
// with commands off must remove those of an earlier run, and a reconnect
// within a run keeps them without subscribing again.
func TestCommandSubscriptionsFollowConfig(t *testing.T) {
	t.Parallel()
	b := mqtttest.Start(t, mqtttest.Options{})
	w := watch(t, b, watchOpts{id: "ops", clean: true}, "test/v1/dev1/cmd/+/result")
	send := func() {
		t.Helper()
		if tok := w.cli.Publish("test/v1/dev1/cmd/status", 1, false, `{"id":"s"}`); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	enabled := func(o *Options) {
		o.Commands = Commands{Enabled: true, Handlers: Handlers{Status: func(context.Context) error { return nil }}}
	}

	r1 := newRig(t, b, enabled)
	waitFor(t, 5*time.Second, "online", func() bool { return r1.c.Stats().Connected })
	r1.stop(t)

	r2 := newRig(t, b, nil)
	waitFor(t, 5*time.Second, "online", func() bool { return r2.c.Stats().Connected })
	before := r2.c.Stats().BytesReceived
	send()
	time.Sleep(300 * time.Millisecond)
	if got := r2.c.Stats().BytesReceived; got != before {
		t.Fatalf("commands off, yet %d bytes arrived after a command", got-before)
	}
	r2.stop(t)

	r3 := newRig(t, b, enabled)
	waitFor(t, 5*time.Second, "online", func() bool { return r3.c.Stats().Connected })
	r3.dial.cut(false)
	waitFor(t, 5*time.Second, "reconnected", func() bool { s := r3.c.Stats(); return s.Connected && s.Session == 2 })
	send()
	if res := decode[CommandResult](t, w.next(t, 5*time.Second, nil).payload); !res.OK || res.ID != "s" {
		t.Fatalf("result = %+v", res)
	}
}

// A retained command is not a request but a standing order: the broker
// hands it over again on every SUBSCRIBE, which a device makes at the
// first connect of every run, and the duplicate memory does not survive
// a restart. Run, it would send an SMS or reset the modem at every
// start. It is refused, never run.
func TestRetainedCommandRefused(t *testing.T) {
	t.Parallel()
	b := mqtttest.Start(t, mqtttest.Options{})
	w := watch(t, b, watchOpts{id: "ops", clean: true}, "test/v1/dev1/cmd/+/result")
	if tok := w.cli.Publish("test/v1/dev1/cmd/status", 1, true, `{"id":"standing"}`); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	calls := make(chan string, 10)
	for run := range 2 {
		r := newRig(t, b, func(o *Options) {
			o.Commands = Commands{Enabled: true, Handlers: Handlers{Status: func(context.Context) error { calls <- "status"; return nil }}}
		})
		res := decode[CommandResult](t, w.next(t, 5*time.Second, nil).payload)
		if res.OK || res.ID != "standing" || !strings.Contains(res.Error, "retained") {
			t.Fatalf("run %d: result = %+v", run, res)
		}
		r.stop(t)
	}
	if len(calls) != 0 {
		t.Fatalf("a retained command ran %d times", len(calls))
	}
}

// pubRecorder is a paho client that only records publishes.
type pubRecorder struct {
	paho.Client
	mu     sync.Mutex
	topics []string
}

func (p *pubRecorder) IsConnected() bool { return true }

func (p *pubRecorder) Publish(topic string, _ byte, _ bool, _ any) paho.Token {
	p.mu.Lock()
	p.topics = append(p.topics, topic)
	p.mu.Unlock()
	return doneToken{}
}

func (p *pubRecorder) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.topics)
}

type doneToken struct{}

func (doneToken) Wait() bool                     { return true }
func (doneToken) WaitTimeout(time.Duration) bool { return true }
func (doneToken) Done() <-chan struct{}          { c := make(chan struct{}); close(c); return c }
func (doneToken) Error() error                   { return nil }

// Repeating a finished command gets its answer again, but every answer
// crosses the paid link: repeats draw on the same budget as refusals, so
// a requester (or an attacker) stuck in a loop cannot make the gateway
// publish without end.
func TestRepeatedCommandAnswersLimited(t *testing.T) {
	c, err := New(Options{
		Conn: Conn{Broker: "tls://broker.example:8883"}, DeviceID: "dev1",
		Ordered: Adapt(&memQueue{}), Telemetry: Adapt(&memQueue{}),
		Commands: Commands{Enabled: true, Burst: 1, Handlers: Handlers{Status: func(context.Context) error { return nil }}},
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := &pubRecorder{}
	s := &session{cli: rec, lost: make(chan struct{})}
	topic := "cellagent/v1/dev1/cmd/status"
	c.cmds.receive(s, topic, []byte(`{"id":"x"}`), false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.cmds.work(ctx)
	waitFor(t, 5*time.Second, "first answer", func() bool { return rec.count() == 1 })
	for range 100 {
		c.cmds.receive(s, topic, []byte(`{"id":"x"}`), false)
	}
	time.Sleep(100 * time.Millisecond) // publishes are handed off asynchronously
	// The answer budget is 4 × burst within the same instant.
	if n := rec.count(); n > 1+4 {
		t.Fatalf("%d answers to 1 command repeated 100 times", n)
	}
	if c.cmds.done.Load() != 1 {
		t.Fatalf("ran %d times", c.cmds.done.Load())
	}
}
