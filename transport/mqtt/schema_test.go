package mqtt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestTopics(t *testing.T) {
	tp := Topics{Prefix: DefaultPrefix, Device: "8988228066601234567"}
	if got := tp.Topic(KindSMSResult); got != "cellagent/v1/8988228066601234567/sms/out/result" {
		t.Fatal(got)
	}
	if got := tp.CommandResult(CmdSMSSend); got != "cellagent/v1/8988228066601234567/cmd/sms/send/result" {
		t.Fatal(got)
	}
	tests := []struct {
		topic string
		want  ParsedTopic
		ok    bool
	}{
		{"cellagent/v1/gw-1/status", ParsedTopic{Device: "gw-1", Kind: KindStatus}, true},
		{"cellagent/v1/gw-1/telemetry", ParsedTopic{Device: "gw-1", Kind: KindTelemetry}, true},
		{"cellagent/v1/gw-1/event", ParsedTopic{Device: "gw-1", Kind: KindEvent}, true},
		{"cellagent/v1/gw-1/sms/in", ParsedTopic{Device: "gw-1", Kind: KindSMSIn}, true},
		{"cellagent/v1/gw-1/sms/out/result", ParsedTopic{Device: "gw-1", Kind: KindSMSResult}, true},
		{"cellagent/v1/gw-1/cmd/sms/send", ParsedTopic{Device: "gw-1", Command: CmdSMSSend}, true},
		{"cellagent/v1/gw-1/cmd/status/result", ParsedTopic{Device: "gw-1", Command: CmdStatus, Result: true}, true},
		{"cellagent/v1/gw-1/cmd/recover", ParsedTopic{Device: "gw-1", Command: CmdRecover}, true},
		{"cellagent/v1/gw-1/cmd/reboot", ParsedTopic{}, false},
		{"cellagent/v1/gw-1/cmd/", ParsedTopic{}, false},
		{"cellagent/v1/gw-1/sms", ParsedTopic{}, false},
		{"cellagent/v1/gw-1", ParsedTopic{}, false},
		{"cellagent/v1//status", ParsedTopic{}, false},
		{"cellagent/v1/+/status", ParsedTopic{}, false},
		{"cellagent/v2/gw-1/status", ParsedTopic{}, false},
		{"xcellagent/v1/gw-1/status", ParsedTopic{}, false},
	}
	for _, tc := range tests {
		got, ok := ParseTopic(DefaultPrefix, tc.topic)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseTopic(%q) = %+v %v, want %+v %v", tc.topic, got, ok, tc.want, tc.ok)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, p := range []string{"cellagent/v1", "acme", "fleet/eu-west/v1"} {
		if err := ValidatePrefix(p); err != nil {
			t.Errorf("prefix %q: %v", p, err)
		}
	}
	for _, p := range []string{"", "$SYS", "a/+/b", "a/#", "/a", "a/", "a//b", "a\x00"} {
		if ValidatePrefix(p) == nil {
			t.Errorf("prefix %q accepted", p)
		}
	}
	for _, id := range []string{"8988228066601234567", "gw-01", "site_3.gw:a"} {
		if err := ValidateLevel(id); err != nil {
			t.Errorf("id %q: %v", id, err)
		}
	}
	for _, id := range []string{"", "a/b", "+", "#", "a b", "ü", strings.Repeat("x", 65)} {
		if ValidateLevel(id) == nil {
			t.Errorf("id %q accepted", id)
		}
	}
}

func TestRegistrationOverall(t *testing.T) {
	tests := []struct {
		r    Registration
		want string
	}{
		{Registration{CS: "searching", EPS: "home"}, "home"},
		{Registration{CS: "home", EPS: "searching"}, "home"},
		{Registration{CS: "denied", PS: "searching", EPS: "unknown"}, "unknown"},
		{Registration{CS: "roaming"}, "roaming"},
		{Registration{}, ""},
	}
	for _, tc := range tests {
		if got := tc.r.Overall(); got != tc.want {
			t.Errorf("%+v.Overall() = %q, want %q", tc.r, got, tc.want)
		}
	}
}

func TestRender(t *testing.T) {
	c, err := New(Options{Conn: Conn{Broker: "tls://b"}, DeviceID: "gw", Ordered: Adapt(&memQueue{}), Telemetry: Adapt(&memQueue{})})
	if err != nil {
		t.Fatal(err)
	}
	s := &session{n: 7, seq: map[Kind]uint64{}}
	rec := func(k Kind, run, sess uint64, body string) QueueItem {
		b, _ := json.Marshal(record{Kind: k, Run: run, Session: sess, Body: json.RawMessage(body)})
		return QueueItem{Seq: 42, Rec: b}
	}
	tests := []struct {
		name    string
		item    QueueItem
		topic   string
		payload string
		retain  bool
	}{
		{"live telemetry", rec(KindTelemetry, c.run, 7, `{"ts":1,"rsrp":-90}`), "cellagent/v1/gw/telemetry", `{"v":1,"seq":1,"q":42,"ts":1,"rsrp":-90}`, true},
		{"second on topic", rec(KindTelemetry, c.run, 7, `{"ts":2}`), "cellagent/v1/gw/telemetry", `{"v":1,"seq":2,"q":42,"ts":2}`, true},
		{"queued offline", rec(KindEvent, c.run, 0, `{"ts":3,"type":"sim"}`), "cellagent/v1/gw/event", `{"v":2,"seq":1,"q":42,"replayed":true,"ts":3,"type":"sim"}`, false},
		{"older session", rec(KindSMSResult, c.run, 6, `{"ts":4,"id":"m","state":"sent"}`), "cellagent/v1/gw/sms/out/result", `{"v":1,"seq":1,"q":42,"replayed":true,"ts":4,"id":"m","state":"sent"}`, false},
		{"previous run", rec(KindSMSIn, c.run+1, 7, `{"id":"x"}`), "cellagent/v1/gw/sms/in", `{"v":1,"seq":1,"q":42,"replayed":true,"id":"x"}`, false},
		{"empty body", rec(KindEvent, c.run, 7, ` { } `), "cellagent/v1/gw/event", `{"v":2,"seq":2,"q":42}`, false},
	}
	for _, tc := range tests {
		topic, payload, retain, err := c.render(s, tc.item)
		if err != nil || topic != tc.topic || string(payload) != tc.payload || retain != tc.retain {
			t.Errorf("%s: %s %s %v %v", tc.name, topic, payload, retain, err)
		}
		if !json.Valid(payload) {
			t.Errorf("%s: invalid JSON %s", tc.name, payload)
		}
	}
	for _, bad := range []QueueItem{
		{Seq: 1, Rec: []byte(`garbage`)},
		rec(KindStatus, c.run, 7, `{}`),
		rec("reboot", c.run, 7, `{}`),
		rec(KindEvent, c.run, 7, `[1]`),
		rec(KindEvent, c.run, 7, `"x"`),
	} {
		if _, _, _, err := c.render(s, bad); err == nil {
			t.Errorf("rendered %s", bad.Rec)
		}
	}
}

// Every JSON example in SCHEMA.md must decode, strictly, as the payload
// type or command its heading names, so the document cannot drift from
// the code.
func TestSchemaExamples(t *testing.T) {
	doc, err := os.ReadFile("SCHEMA.md")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)<!-- example: ([a-z/]+) -->\n```json\n(.*?)\n```")
	strict := func(payload string, v any) error {
		dec := json.NewDecoder(strings.NewReader(payload))
		dec.DisallowUnknownFields()
		return dec.Decode(v)
	}
	seen := map[string]bool{}
	for _, m := range block.FindAllStringSubmatch(string(doc), -1) {
		kind, payload := m[1], m[2]
		seen[kind] = true
		if !json.Valid([]byte(payload)) {
			t.Errorf("%s: invalid JSON", kind)
			continue
		}
		var compact bytes.Buffer
		_ = json.Compact(&compact, []byte(payload))
		var err error
		switch kind {
		case "status":
			err = strict(payload, new(Status))
		case "telemetry":
			err = strict(payload, new(TelemetryMsg))
		case "event":
			var m EventMsg
			if err = strict(payload, &m); err == nil && m.V != EventVersion {
				err = fmt.Errorf("v %d, want %d", m.V, EventVersion)
			}
		case "sms/in":
			err = strict(payload, new(SMSInMsg))
		case "sms/out/result":
			err = strict(payload, new(SMSResultMsg))
		case "result":
			err = strict(payload, new(CommandResult))
		case "cmd/sms/send", "cmd/status", "cmd/recover":
			_, err = ParseCommand(strings.TrimPrefix(kind, "cmd/"), compact.Bytes(), 0)
		default:
			t.Errorf("unknown example kind %q", kind)
		}
		if err != nil {
			t.Errorf("%s example: %v\n%s", kind, err, payload)
		}
	}
	for _, k := range []string{"status", "telemetry", "event", "sms/in", "sms/out/result", "result", "cmd/sms/send", "cmd/status", "cmd/recover"} {
		if !seen[k] {
			t.Errorf("SCHEMA.md has no %s example", k)
		}
	}
}
