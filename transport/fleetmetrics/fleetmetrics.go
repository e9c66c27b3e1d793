// Package fleetmetrics serves the fleet reader's view of the gateways as
// Prometheus metrics: a Collector that builds every sample from the
// reader's snapshot at scrape time, so there is no second copy of the
// state to keep in step and a gateway that stops reporting drops out of
// the next scrape once it is stale (the Prometheus guide on writing
// exporters: "metrics should only be pulled from the application when
// Prometheus scrapes them").
//
// The metric list is in docs/fleet-tools.md; Names returns it.
package fleetmetrics

import (
	"slices"
	"strings"
	"time"

	"cellagent/modem/clock"
	"cellagent/transport/mqtt"
)

// Source is what the collector reads: the fleet reader.
type Source interface {
	Snapshot() []mqtt.Gateway
}

// RegStates is the state set of cellagent_gateway_registration: the
// registration names of SCHEMA.md. A state outside it is exported as
// "other".
var RegStates = []string{"home", "roaming", "searching", "denied", "not-searching", "unknown", "other"}

// Collector builds the fleet's metric families from a Source.
type Collector struct {
	src   Source
	stale time.Duration
	clock clock.Clock
}

// New returns a collector that leaves out gateways not heard from for
// longer than stale (never, if stale is 0) by c (clock.System when nil).
func New(src Source, stale time.Duration, c clock.Clock) *Collector {
	if c == nil {
		c = clock.System
	}
	return &Collector{src: src, stale: stale, clock: c}
}

// allDescs are the fleet's metric families; their index is the family's
// place in what collect returns.
var allDescs []*desc

func gw(name, help string, typ metricType, labels ...string) int {
	return fleetDesc(name, help, typ, append([]string{"gateway"}, labels...)...)
}

func fleetDesc(name, help string, typ metricType, labels ...string) int {
	allDescs = append(allDescs, newDesc(name, help, typ, labels...))
	return len(allDescs) - 1
}

var (
	dInfo      = gw("cellagent_gateway_info", "Identity of the gateway from its birth message; always 1.", gauge, "imei", "iccid", "model", "firmware", "agent")
	dNetwork   = gw("cellagent_gateway_network_info", "Access technology and operator (MCC+MNC) of the last telemetry; always 1.", gauge, "access_technology", "operator")
	dUp        = gw("cellagent_gateway_up", "1 if the gateway's retained status is online, 0 after its last will or clean shutdown.", gauge)
	dSession   = gw("cellagent_gateway_session", "Session number of the gateway's MQTT connection (grows with every connection attempt).", gauge)
	dLastSeen  = gw("cellagent_gateway_last_seen_timestamp_seconds", "When the gateway was last heard from, unix seconds.", gauge)
	dReg       = gw("cellagent_gateway_registration", "Registration state per domain (cs, ps, eps) as a state set: 1 for the current state, 0 for the others.", gauge, "domain", "state")
	dRSSI      = gw("cellagent_gateway_rssi_dbm", "Received signal strength, dBm.", gauge)
	dRSRP      = gw("cellagent_gateway_rsrp_dbm", "LTE reference signal received power, dBm.", gauge)
	dRSRQ      = gw("cellagent_gateway_rsrq_db", "LTE reference signal received quality, dB.", gauge)
	dSINR      = gw("cellagent_gateway_sinr_db", "Signal to interference plus noise ratio, dB.", gauge)
	dDataLeft  = gw("cellagent_gateway_quota_data_left_bytes", "Data allowance left as the operator API last reported it, bytes.", gauge)
	dSMSLeft   = gw("cellagent_gateway_quota_sms_left", "SMS allowance left as the operator API last reported it.", gauge)
	dRecovery  = gw("cellagent_gateway_recovery_events_total", "Recovery events seen by this exporter, by ladder step and outcome.", counter, "step", "outcome")
	dRecovDay  = gw("cellagent_gateway_recovery_steps_today", "Recovery steps the gateway ran today, as it reports in its health.", gauge)
	dSMSIn     = gw("cellagent_gateway_sms_received_total", "Incoming SMS the gateway forwarded, seen by this exporter.", counter)
	dSMSOut    = gw("cellagent_gateway_sms_sent_results_total", "Outcomes of outgoing SMS seen by this exporter, by state (sent, delivered, failed).", counter, "state")
	dGaps      = gw("cellagent_gateway_telemetry_gaps_total", "Telemetry messages missing by their sequence numbers, seen by this exporter.", counter)
	dQueue     = gw("cellagent_gateway_queue_depth", "Messages waiting in the gateway's durable queues, by queue (events, telemetry).", gauge, "queue")
	dDropped   = gw("cellagent_gateway_telemetry_dropped_total", "Telemetry samples the gateway dropped from its full queue, ever.", counter)
	dUptime    = gw("cellagent_gateway_agent_uptime_seconds", "Seconds since the gateway's agent started.", gauge)
	dGateways  = fleetDesc("cellagent_fleet_gateways", "Gateways in the exporter's view (stale ones excluded), by state.", gauge, "state")
	regDomains = []string{"cs", "ps", "eps"}
)

// collect returns the samples of every gateway heard from within the
// stale limit, one family per entry of allDescs.
func (c *Collector) collect() []family {
	fams := make([]family, len(allDescs))
	for i, d := range allDescs {
		fams[i].d = d
	}
	now := c.clock.Now()
	online, offline := 0, 0
	for _, g := range c.src.Snapshot() {
		if c.stale > 0 && now.Sub(g.LastSeen) > c.stale {
			continue
		}
		if g.Online {
			online++
		} else {
			offline++
		}
		collectGateway(fams, &g)
	}
	fams[dGateways].samples = append(fams[dGateways].samples,
		sample{values: []string{"online"}, value: float64(online)},
		sample{values: []string{"offline"}, value: float64(offline)})
	return fams
}

func collectGateway(fams []family, g *mqtt.Gateway) {
	add := func(d int, v float64, labels ...string) {
		values := append(make([]string, 0, 1+len(labels)), g.ID)
		fams[d].samples = append(fams[d].samples, sample{values: append(values, labels...), value: v})
	}
	if g.Identity != (mqtt.Identity{}) {
		add(dInfo, 1, g.IMEI, g.ICCID, g.Model, g.Firmware, g.Agent)
	}
	if g.Act != "" || g.Operator != "" {
		add(dNetwork, 1, g.Act, g.Operator)
	}
	add(dUp, b2f(g.Online))
	if g.Session > 0 {
		add(dSession, float64(g.Session))
	}
	if !g.LastSeen.IsZero() {
		add(dLastSeen, float64(g.LastSeen.UnixMilli())/1e3)
	}
	for i, st := range []string{g.RegDomains.CS, g.RegDomains.PS, g.RegDomains.EPS} {
		if st == "" {
			continue // the domain was not read: no state to set
		}
		if !slices.Contains(RegStates, st) {
			st = "other"
		}
		for _, s := range RegStates {
			add(dReg, b2f(s == st), regDomains[i], s)
		}
	}
	if g.RSSI != nil {
		add(dRSSI, float64(*g.RSSI))
	}
	if g.RSRP != nil {
		add(dRSRP, float64(*g.RSRP))
	}
	if g.RSRQ != nil {
		add(dRSRQ, float64(*g.RSRQ))
	}
	if g.SINR != nil {
		add(dSINR, *g.SINR)
	}
	if q := g.Quota; q != nil {
		if q.DataLeft != nil {
			add(dDataLeft, *q.DataLeft)
		}
		if q.SMSLeft != nil {
			add(dSMSLeft, *q.SMSLeft)
		}
	}
	for k, n := range g.Recoveries {
		step, outcome, _ := strings.Cut(k, "/")
		add(dRecovery, float64(n), step, outcome)
	}
	add(dSMSIn, float64(g.SMSIn))
	for st, n := range g.SMSOut {
		add(dSMSOut, float64(n), st)
	}
	add(dGaps, float64(g.Gaps))
	if h := g.Health; h != nil {
		add(dQueue, float64(h.EventsQueued), "events")
		add(dQueue, float64(h.TelemetryQueued), "telemetry")
		add(dDropped, float64(h.TelemetryDropped))
		add(dRecovDay, float64(h.Recoveries))
		add(dUptime, float64(h.Uptime))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
