package fleetinflux

import (
	"os"
	"strings"
	"testing"
)

// schemaExamples are SCHEMA.md's examples under one device, with typed
// event attributes (numbers and booleans beside strings).
var schemaExamples = [][2]string{
	{"cellagent/v1/8988228066601234567/telemetry", `{"v":1,"seq":7,"q":1043,"ts":1735690500,"reg":{"cs":"searching","eps":"home"},"act":"CAT-M1","op":"26201","band":"LTE BAND 20","cell":"1A2B3C4","tac":"66C0","rssi":-65,"rsrp":-95,"rsrq":-11,"sinr":7.4,"ps_att":true,"quota":{"status":"ACTIVE","data_left":734003200,"sms_left":88,"at":1735689000},"health":{"up":86400,"tmdrop":3,"recov":1}}`},
	{"cellagent/v1/8988228066601234567/event", `{"v":1,"seq":1,"q":1041,"ts":1735688400,"type":"recovery","level":"warn","msg":"cfun-reset: done","attrs":{"step":"cfun-reset","outcome":"done","steps":2,"requested":true}}`},
	{"cellagent/v1/8988228066601234567/status", `{"v":1,"state":"online","session":12,"ts":1735689600,"ka":300,"fw":"BG96MAR02A07M1G","agent":"0.4.0"}`},
	{"cellagent/v1/8988228066601234567/sms/in", `{"v":1,"seq":1,"q":1042,"id":"c5e1f0a2b3d4","from":"+491701234567","received":"2025-01-01T00:00:03Z","text":"RESET please","parts":1,"pdus":["00"]}`},
	{"cellagent/v1/8988228066601234567/sms/out/result", `{"v":1,"seq":3,"q":1044,"ts":1735690560,"id":"op-20250101-0007","state":"delivered","refs":[17],"delivered":[17],"attempts":1}`},
}

// The lines docs/fleet-tools.md shows are the ones Line writes.
func TestDocumentedLines(t *testing.T) {
	doc, err := os.ReadFile("../../docs/fleet-tools.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, _ := strings.Cut(string(doc), "<!-- influx -->\n```\n")
	block, _, _ = strings.Cut(block, "```")
	want := strings.Split(strings.TrimSpace(block), "\n")
	if len(want) != len(schemaExamples) {
		t.Fatalf("%d documented lines, %d examples", len(want), len(schemaExamples))
	}
	for i, ex := range schemaExamples {
		got, ok, err := Line("cellagent/v1", ex[0], []byte(ex[1]))
		if err != nil || !ok || got != want[i] {
			t.Errorf("%s:\n got %s (%v, %v)\nwant %s", ex[0], got, ok, err, want[i])
		}
	}
}

func TestLine(t *testing.T) {
	for _, c := range []struct {
		name, topic, payload, want string
		ok, err                    bool
	}{
		{"string attrs stay strings", "p/gw/event", `{"v":1,"ts":5,"type":"sim","attrs":{"steps":"2"}}`, `cellagent_event,device=gw,type=sim attr_steps="2",seq=0i,replayed=false 5000000000`, true, false},
		{"escaping", "p/gw/event", `{"v":1,"ts":5,"type":"a b,c","msg":"say \"hi\"\\","attrs":{"k=1":1.5}}`, `cellagent_event,device=gw,type=a\ b\,c msg="say \"hi\"\\",attr_k\=1=1.5,seq=0i,replayed=false 5000000000`, true, false},
		{"unknown signal left out", "p/gw/telemetry", `{"v":1,"seq":2,"ts":9,"reg":{"eps":"searching"}}`, `cellagent_telemetry,device=gw reg="searching",reg_eps="searching",seq=2i,replayed=false 9000000000`, true, false},
		{"will without ts", "p/gw/status", `{"v":1,"state":"offline","session":3}`, `cellagent_status,device=gw online=false,session=3i`, true, false},
		{"cleared gateway", "p/gw/status", ``, ``, false, false},
		{"command topic", "p/gw/cmd/status", `{"id":"x"}`, ``, false, false},
		{"other prefix", "q/gw/status", `{"v":1}`, ``, false, false},
		{"newer schema", "p/gw/telemetry", `{"v":2,"ts":1}`, ``, false, true},
		{"broken", "p/gw/event", `{"v":1,"ts":"x"}`, ``, false, true},
	} {
		got, ok, err := Line("p", c.topic, []byte(c.payload))
		if got != c.want || ok != c.ok || (err != nil) != c.err {
			t.Errorf("%s: got %q %v %v, want %q %v err %v", c.name, got, ok, err, c.want, c.ok, c.err)
		}
	}
}

func FuzzLine(f *testing.F) {
	for _, ex := range schemaExamples {
		f.Add(ex[0], []byte(ex[1]))
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		line, ok, err := Line("cellagent/v1", topic, payload)
		if err != nil && ok {
			t.Fatal("ok with an error")
		}
		if ok && (strings.ContainsAny(line, "\n\r") || !strings.HasPrefix(line, "cellagent_")) {
			t.Fatalf("bad line %q", line)
		}
	})
}
