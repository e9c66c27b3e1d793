// Package fleetinflux maps the gateways' MQTT messages to InfluxDB line
// protocol, the same mapping as the Telegraf mqtt_consumer recipe in
// docs/fleet-tools.md: the device id from the topic as a tag, the
// payload's unix "ts" as the time, numbers as numbers (signal values
// that are integers on the wire as integers, event attributes as they
// came: numbers as floats, strings as strings, booleans as booleans).
package fleetinflux

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"cellagent/transport/mqtt"
)

// Measurement names.
const (
	Telemetry = "cellagent_telemetry"
	Event     = "cellagent_event"
	Status    = "cellagent_status"
	SMS       = "cellagent_sms"
)

type field struct {
	key string
	val string // already encoded
}

type point struct {
	name   string
	tags   [][2]string
	fields []field
	ts     int64 // unix s; 0: none (the server's time)
}

func (p *point) tag(k, v string) {
	if v != "" {
		p.tags = append(p.tags, [2]string{k, v})
	}
}

func (p *point) int(k string, v *int) {
	if v != nil {
		p.fields = append(p.fields, field{k, strconv.Itoa(*v) + "i"})
	}
}

func (p *point) uint(k string, v uint64) {
	p.fields = append(p.fields, field{k, strconv.FormatUint(v, 10) + "i"})
}

func (p *point) float(k string, v *float64) {
	if v != nil && !math.IsNaN(*v) && !math.IsInf(*v, 0) {
		p.fields = append(p.fields, field{k, strconv.FormatFloat(*v, 'f', -1, 64)})
	}
}

func (p *point) str(k, v string) {
	if v != "" {
		p.fields = append(p.fields, field{k, `"` + fieldEscaper.Replace(v) + `"`})
	}
}

func (p *point) bool(k string, v bool) { p.fields = append(p.fields, field{k, strconv.FormatBool(v)}) }

// Escaping per the line protocol reference: measurement commas and
// spaces; tag keys, values and field keys also equals signs; string
// field values double quotes and backslashes.
var (
	nameEscaper  = strings.NewReplacer(`,`, `\,`, ` `, `\ `, "\n", `\n`, "\r", `\r`)
	keyEscaper   = strings.NewReplacer(`,`, `\,`, ` `, `\ `, `=`, `\=`, "\n", `\n`, "\r", `\r`)
	fieldEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`)
)

func (p *point) String() string {
	var b strings.Builder
	b.WriteString(nameEscaper.Replace(p.name))
	slices.SortFunc(p.tags, func(a, c [2]string) int { return strings.Compare(a[0], c[0]) })
	for _, t := range p.tags {
		b.WriteString("," + keyEscaper.Replace(t[0]) + "=" + keyEscaper.Replace(t[1]))
	}
	for i, f := range p.fields {
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteByte(',')
		}
		b.WriteString(keyEscaper.Replace(f.key) + "=" + f.val)
	}
	if p.ts > 0 {
		b.WriteString(" " + strconv.FormatInt(p.ts, 10) + "000000000")
	}
	return b.String()
}

// event is an event decoded apart from the schema type, so attribute
// values keep whatever JSON type they came as.
type event struct {
	mqtt.Header
	TS    int64          `json:"ts"`
	Type  string         `json:"type"`
	Level string         `json:"level"`
	Msg   string         `json:"msg"`
	Attrs map[string]any `json:"attrs"`
}

func decode[T any](topic string, payload []byte) (T, error) {
	var m T
	if err := json.Unmarshal(payload, &m); err != nil {
		return m, fmt.Errorf("fleetinflux: %s: %w", topic, err)
	}
	return m, nil
}

// Line maps one message to a line of line protocol. ok is false for
// topics outside the schema and for messages without a field to write
// (an empty retained status clearing a gateway); err for a payload that
// does not decode.
func Line(prefix, topic string, payload []byte) (line string, ok bool, err error) {
	p, ok := mqtt.ParseTopic(prefix, topic)
	if !ok || p.Kind == "" || len(payload) == 0 {
		return "", false, nil
	}
	var v struct {
		V int `json:"v"`
	}
	if err := json.Unmarshal(payload, &v); err != nil {
		return "", false, fmt.Errorf("fleetinflux: %s: %w", topic, err)
	}
	if v.V != mqtt.SchemaVersion {
		return "", false, fmt.Errorf("fleetinflux: %s: schema v%d, want v%d", topic, v.V, mqtt.SchemaVersion)
	}
	pt := point{}
	pt.tag("device", p.Device)
	switch p.Kind {
	case mqtt.KindTelemetry:
		m, err := decode[mqtt.TelemetryMsg](topic, payload)
		if err != nil {
			return "", false, err
		}
		pt.name, pt.ts = Telemetry, m.TS
		pt.tag("act", m.Act)
		pt.tag("op", m.Operator)
		pt.int("rssi", m.RSSI)
		pt.int("rsrp", m.RSRP)
		pt.int("rsrq", m.RSRQ)
		pt.float("sinr", m.SINR)
		pt.str("reg", m.Reg.Overall())
		pt.str("reg_cs", m.Reg.CS)
		pt.str("reg_ps", m.Reg.PS)
		pt.str("reg_eps", m.Reg.EPS)
		pt.str("band", m.Band)
		pt.str("cell", m.Cell)
		pt.str("tac", m.TAC)
		if m.Attached != nil {
			pt.bool("ps_att", *m.Attached)
		}
		if q := m.Quota; q != nil {
			pt.float("quota_data_left", q.DataLeft)
			pt.float("quota_sms_left", q.SMSLeft)
			pt.str("quota_status", q.Status)
		}
		if h := m.Health; h != nil {
			up, evq, tmq, recov := int(h.Uptime), h.EventsQueued, h.TelemetryQueued, h.Recoveries
			pt.int("uptime", &up)
			pt.int("events_queued", &evq)
			pt.int("telemetry_queued", &tmq)
			pt.uint("telemetry_dropped", h.TelemetryDropped)
			pt.int("recoveries_today", &recov)
		}
		pt.uint("seq", m.Seq)
		pt.bool("replayed", m.Replayed)
	case mqtt.KindEvent:
		m, err := decode[event](topic, payload)
		if err != nil {
			return "", false, err
		}
		pt.name, pt.ts = Event, m.TS
		pt.tag("type", m.Type)
		pt.tag("level", m.Level)
		pt.str("msg", m.Msg)
		for _, k := range slices.Sorted(maps.Keys(m.Attrs)) {
			switch a := m.Attrs[k].(type) {
			case float64:
				pt.float("attr_"+k, &a)
			case string:
				pt.str("attr_"+k, a)
			case bool:
				pt.bool("attr_"+k, a)
			}
		}
		pt.uint("seq", m.Seq)
		pt.bool("replayed", m.Replayed)
	case mqtt.KindStatus:
		m, err := decode[mqtt.Status](topic, payload)
		if err != nil {
			return "", false, err
		}
		pt.name, pt.ts = Status, m.TS
		pt.bool("online", m.State == mqtt.Online)
		pt.uint("session", m.Session)
		pt.str("fw", m.Firmware)
		pt.str("agent", m.Agent)
	case mqtt.KindSMSIn:
		m, err := decode[mqtt.SMSInMsg](topic, payload)
		if err != nil {
			return "", false, err
		}
		pt.name, pt.ts = SMS, m.Received.Unix()
		pt.tag("direction", "in")
		pt.str("id", m.ID)
		pt.str("from", m.From)
		pt.int("parts", &m.Parts)
	case mqtt.KindSMSResult:
		m, err := decode[mqtt.SMSResultMsg](topic, payload)
		if err != nil {
			return "", false, err
		}
		pt.name, pt.ts = SMS, m.TS
		pt.tag("direction", "out")
		pt.tag("state", m.State)
		pt.str("id", m.ID)
		pt.int("attempts", &m.Attempts)
	default:
		return "", false, nil
	}
	return pt.String(), true, nil
}
