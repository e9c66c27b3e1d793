package chaos

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// observer is the fleet side: one MQTT client with a persistent session
// that records everything the agent publishes (a broker restart loses
// nothing of it, mosquitto persists the session) and publishes the
// operator's commands.
type observer struct {
	cli    paho.Client
	prefix string // cellagent/v1/<id>/
	ops    *operator

	mu      sync.Mutex
	raw     *os.File
	smsIn   []smsIn
	results []outResult
	events  []event
	recover []cmdResult
	other   int
}

type smsIn struct {
	ID      string `json:"id"`
	From    string `json:"from"`
	Text    string `json:"text"`
	Parts   int    `json:"parts"`
	Missing []int  `json:"missing"`
	Error   string `json:"error"`
}

type outResult struct {
	ID     string `json:"id"`
	State  string `json:"state"`
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

type event struct {
	Q     uint64         `json:"q"`
	TS    int64          `json:"ts"`
	Type  string         `json:"type"`
	Msg   string         `json:"msg"`
	Attrs map[string]any `json:"attrs"`
}

// attr is attribute k as text; attrs keep their JSON types on the wire.
func (e event) attr(k string) string {
	v, ok := e.Attrs[k]
	if !ok {
		return ""
	}
	return fmt.Sprint(v)
}

type cmdResult struct {
	ID    string `json:"id"`
	OK    bool   `json:"ok"`
	Error string `json:"error"`
}

func newObserver(t *testing.T, url, prefix, rawPath string) *observer {
	t.Helper()
	raw, err := os.OpenFile(rawPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	o := &observer{prefix: prefix, raw: raw}
	o.ops = &operator{obs: o, run: time.Now().Unix() % 100000, cmds: map[string]*moCmd{}, mts: map[string]*mtMsg{}}
	opts := paho.NewClientOptions().AddBroker(url).SetClientID("chaos-fleet").
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(250 * time.Millisecond).SetMaxReconnectInterval(500 * time.Millisecond).
		SetConnectTimeout(2 * time.Second).SetKeepAlive(5 * time.Second)
	// Subscribed on every connect: the session keeps the subscription, but
	// a first connect must make it, and resubscribing costs nothing here.
	opts.SetOnConnectHandler(func(c paho.Client) {
		c.Subscribe(prefix+"#", 1, o.receive)
	})
	o.cli = paho.NewClient(opts)
	if tok := o.cli.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("fleet client: %v", tok.Error())
	}
	t.Cleanup(func() {
		o.cli.Disconnect(100)
		o.mu.Lock()
		o.raw.Close()
		o.mu.Unlock()
	})
	return o
}

func (o *observer) receive(_ paho.Client, m paho.Message) {
	topic := strings.TrimPrefix(m.Topic(), o.prefix)
	p := m.Payload()
	o.mu.Lock()
	fmt.Fprintf(o.raw, "%s %s %s\n", time.Now().Format("15:04:05.000"), topic, p)
	o.mu.Unlock()
	var err error
	switch topic {
	case "sms/in":
		var v smsIn
		if err = json.Unmarshal(p, &v); err == nil {
			o.mu.Lock()
			o.smsIn = append(o.smsIn, v)
			o.mu.Unlock()
		}
	case "sms/out/result":
		var v outResult
		if err = json.Unmarshal(p, &v); err == nil {
			o.mu.Lock()
			o.results = append(o.results, v)
			o.mu.Unlock()
		}
	case "event":
		var v event
		if err = json.Unmarshal(p, &v); err == nil {
			o.mu.Lock()
			o.events = append(o.events, v)
			o.mu.Unlock()
		}
	case "cmd/sms/send/result":
		var v cmdResult
		if err = json.Unmarshal(p, &v); err == nil {
			o.ops.result(v)
		}
	case "cmd/recover/result":
		var v cmdResult
		if err = json.Unmarshal(p, &v); err == nil {
			o.mu.Lock()
			o.recover = append(o.recover, v)
			o.mu.Unlock()
		}
	default:
		o.mu.Lock()
		o.other++
		o.mu.Unlock()
	}
	if err != nil {
		o.mu.Lock()
		fmt.Fprintf(o.raw, "undecodable %s: %v\n", topic, err)
		o.mu.Unlock()
	}
}

// publish sends a command without waiting: while the broker is down paho
// fails or holds it, and the operator's re-publish covers both.
func (o *observer) publish(name, payload string) {
	o.cli.Publish(o.prefix+"cmd/"+name, 1, false, payload)
}

// operator plays the fleet operator: it asks for MO SMS, each with a
// unique id, and publishes a command again when its result does not come
// (the agent may have been killed, the broker down), as SCHEMA.md tells
// requesters to. It also remembers the MT SMS the driver injected.
type operator struct {
	obs *observer
	run int64 // tags the texts of this run

	mu          sync.Mutex
	cmds        map[string]*moCmd
	order       []string
	published   int
	republished int
	malformed   int // results without an id
	mts         map[string]*mtMsg
	mtOrder     []string
}

type cmdState int

const (
	pending cmdState = iota
	accepted
	refused
)

type moCmd struct {
	ID, To, Text string
	Report       bool
	Parts        int
	last         time.Time
	publishes    int
	state        cmdState
	reason       string
	transient    int // rate-limited or busy answers, retried
}

type mtMsg struct {
	Text, From string
	Parts      int
}

// resendAfter is how long the operator waits for a result before it
// publishes the command again; retryRefusal is the pause after a refusal
// that asks to try later.
const (
	resendAfter  = 5 * time.Second
	retryRefusal = 2 * time.Second
)

func (p *operator) payload(c *moCmd) string {
	b, _ := json.Marshal(map[string]any{"id": c.ID, "to": c.To, "text": c.Text, "report": c.Report})
	return string(b)
}

// send asks for one MO SMS.
func (p *operator) send(id, to, text string, report bool) {
	c := &moCmd{ID: id, To: to, Text: text, Report: report, Parts: 1, last: time.Now(), publishes: 1}
	if len(text) > 160 {
		c.Parts = (len(text) + 152) / 153
	}
	p.mu.Lock()
	p.cmds[id] = c
	p.order = append(p.order, id)
	p.published++
	p.mu.Unlock()
	p.obs.publish("sms/send", p.payload(c))
}

// resend publishes again, at most max of them, the commands whose answer
// is overdue.
func (p *operator) resend(now time.Time, max int) {
	var due []*moCmd
	p.mu.Lock()
	for _, id := range p.order {
		c := p.cmds[id]
		if c.state == pending && now.Sub(c.last) >= resendAfter && len(due) < max {
			c.last, c.publishes = now, c.publishes+1
			p.republished++
			due = append(due, c)
		}
	}
	p.mu.Unlock()
	for _, c := range due {
		p.obs.publish("sms/send", p.payload(c))
	}
}

func (p *operator) result(r cmdResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.cmds[r.ID]
	if c == nil {
		p.malformed++
		return
	}
	if c.state != pending {
		return
	}
	switch {
	case r.OK:
		c.state = accepted
	case strings.Contains(r.Error, "rate limited") || strings.Contains(r.Error, "busy"):
		// Asked to come back later: the next resend does, sooner than
		// for a silence.
		c.transient++
		c.last = time.Now().Add(retryRefusal - resendAfter)
	default:
		c.state, c.reason = refused, r.Error
	}
}

func (p *operator) sentMT(text, from string, parts int) {
	p.mu.Lock()
	p.mts[text] = &mtMsg{Text: text, From: from, Parts: parts}
	p.mtOrder = append(p.mtOrder, text)
	p.mu.Unlock()
}

// snapshot copies the operator's records for the checks.
func (p *operator) snapshot() (cmds []moCmd, mts []mtMsg) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range p.order {
		cmds = append(cmds, *p.cmds[id])
	}
	for _, t := range p.mtOrder {
		mts = append(mts, *p.mts[t])
	}
	return cmds, mts
}

// traffic copies what the observer recorded.
func (o *observer) traffic() (in []smsIn, results []outResult, events []event, recover []cmdResult) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]smsIn(nil), o.smsIn...), append([]outResult(nil), o.results...),
		append([]event(nil), o.events...), append([]cmdResult(nil), o.recover...)
}
