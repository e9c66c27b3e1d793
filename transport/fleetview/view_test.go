package fleetview

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"cellagent/modem/clock/clocktest"
	"cellagent/transport/mqtt"
)

// The examples in docs/fleet-tools.md decode strictly.
func TestDocumentedExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/fleet-tools.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, part := range strings.Split(string(doc), "<!-- example: ")[1:] {
		kind, rest, _ := strings.Cut(part, " -->\n```json\n")
		body, _, _ := strings.Cut(rest, "```")
		dec := json.NewDecoder(bytes.NewReader([]byte(body)))
		dec.DisallowUnknownFields()
		var err error
		switch kind {
		case "update":
			var m Message
			err = dec.Decode(&m)
			if err == nil && (m.V != Version || m.Type != "update" || len(m.Gateways[0].Spark) != 2) {
				t.Errorf("update example: %+v", m)
			}
		case "gateway":
			var d Detail
			err = dec.Decode(&d)
			if err == nil && (d.V != Version || len(d.SMS) != 1) {
				t.Errorf("gateway example: %+v", d)
			}
		default:
			t.Errorf("unknown example %q", kind)
		}
		if err != nil {
			t.Errorf("%s example: %v", kind, err)
		}
		n++
	}
	if n != 2 {
		t.Errorf("%d examples, want 2", n)
	}
}

// A view fed through a fleet reader keeps one sample per resolution
// step within the window, events and SMS per gateway, and hands out
// only what changed.
func TestView(t *testing.T) {
	v := New(Options{Window: time.Hour, Resolution: time.Minute, Clock: clocktest.New(time.Unix(1735690000, 0), 0)})
	f, err := mqtt.NewFleet(mqtt.FleetOptions{Conn: mqtt.Conn{Broker: "tcp://127.0.0.1:1", AllowPlaintext: true}, OnMessage: v.Apply})
	if err != nil {
		t.Fatal(err)
	}
	apply := func(topic, payload string, retained bool) { f.Apply("cellagent/v1/"+topic, []byte(payload), retained) }
	apply("gw-1/status", `{"v":1,"state":"online","session":2,"model":"BG96"}`, true)
	for i, ts := range []int64{1735680000, 1735687000, 1735689000, 1735689010, 1735689900} {
		apply("gw-1/telemetry", fmt.Sprintf(`{"v":1,"seq":%d,"ts":%d,"rsrp":-%d,"sinr":5}`, i+1, ts, 90+i), false)
	}
	apply("gw-1/event", `{"v":1,"seq":1,"q":3,"ts":1735689950,"type":"recovery","level":"warn","msg":"cfun-reset: done","attrs":{"step":"cfun-reset","outcome":"done"}}`, false)
	apply("gw-1/sms/in", `{"v":1,"seq":1,"q":4,"id":"x1","from":"+4917","received":"2025-01-01T00:00:03Z","parts":1,"pdus":[]}`, false)
	apply("gw-1/status", `{"v":1,"state":"offline","session":2}`, false)

	d, ok := v.Gateway("gw-1")
	if !ok {
		t.Fatal("gw-1 unknown")
	}
	// 1735680000 is older than the hour; 1735689000 and ..010 share a
	// minute, the later kept.
	var ts []int64
	for _, s := range d.Samples {
		ts = append(ts, s.TS)
	}
	if got := jsonOf(ts); got != "[1735687000,1735689010,1735689900]" {
		t.Errorf("samples at %s", got)
	}
	if d.Gateway.State != "offline" || d.Gateway.Recoveries != 1 || d.Identity.Model != "BG96" {
		t.Errorf("row %+v identity %+v", d.Gateway, d.Identity)
	}
	if len(d.Events) != 3 || d.Events[0].Kind != "recovery" || d.Events[1].Kind != "sms_in" || d.Events[2].Kind != "status" || d.Events[2].Level != "warn" {
		t.Errorf("events %+v", d.Events)
	}
	if len(d.SMS) != 1 || !strings.Contains(d.SMS[0].Msg, "+4917") {
		t.Errorf("sms %+v", d.SMS)
	}
	m := v.flush()
	if m == nil || len(m.Gateways) != 1 || len(m.Events) != 3 {
		t.Fatalf("first flush %+v", m)
	}
	if m := v.flush(); m != nil {
		t.Errorf("second flush without changes: %+v", m)
	}
	apply("gw-1/status", ``, true)
	if m := v.flush(); m == nil || len(m.Removed) != 1 || len(m.Gateways) != 0 {
		t.Errorf("after removal: %+v", m)
	}
	if _, ok := v.Gateway("gw-1"); ok {
		t.Error("removed gateway still known")
	}
}

func TestThin(t *testing.T) {
	var s []Sample
	for i := range 200 {
		s = append(s, Sample{TS: int64(i)})
	}
	got := thin(s, SparkPoints)
	if len(got) != SparkPoints || got[0].TS != 0 || got[len(got)-1].TS != 199 {
		t.Errorf("thin: %d points, %d..%d", len(got), got[0].TS, got[len(got)-1].TS)
	}
}

func jsonOf(x any) string {
	b, _ := json.Marshal(x)
	return string(b)
}
