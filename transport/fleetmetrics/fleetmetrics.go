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
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

// Collector is a prometheus.Collector over a Source.
type Collector struct {
	src   Source
	stale time.Duration
	now   func() time.Time
}

// New returns a collector that leaves out gateways not heard from for
// longer than stale (never, if stale is 0). now defaults to time.Now.
func New(src Source, stale time.Duration, now func() time.Time) *Collector {
	if now == nil {
		now = time.Now
	}
	return &Collector{src: src, stale: stale, now: now}
}

// names are the metric names, in the order of their descriptors.
var names []string

func desc(name, help string, labels ...string) *prometheus.Desc {
	names = append(names, name)
	return prometheus.NewDesc(name, help, append([]string{"gateway"}, labels...), nil)
}

var (
	dInfo      = desc("cellagent_gateway_info", "Identity of the gateway from its birth message; always 1.", "imei", "iccid", "model", "firmware", "agent")
	dNetwork   = desc("cellagent_gateway_network_info", "Access technology and operator (MCC+MNC) of the last telemetry; always 1.", "access_technology", "operator")
	dUp        = desc("cellagent_gateway_up", "1 if the gateway's retained status is online, 0 after its last will or clean shutdown.")
	dSession   = desc("cellagent_gateway_session", "Session number of the gateway's MQTT connection (grows with every connection attempt).")
	dLastSeen  = desc("cellagent_gateway_last_seen_timestamp_seconds", "When the gateway was last heard from, unix seconds.")
	dReg       = desc("cellagent_gateway_registration", "Registration state per domain (cs, ps, eps) as a state set: 1 for the current state, 0 for the others.", "domain", "state")
	dRSSI      = desc("cellagent_gateway_rssi_dbm", "Received signal strength, dBm.")
	dRSRP      = desc("cellagent_gateway_rsrp_dbm", "LTE reference signal received power, dBm.")
	dRSRQ      = desc("cellagent_gateway_rsrq_db", "LTE reference signal received quality, dB.")
	dSINR      = desc("cellagent_gateway_sinr_db", "Signal to interference plus noise ratio, dB.")
	dDataLeft  = desc("cellagent_gateway_quota_data_left_bytes", "Data allowance left as the operator API last reported it, bytes.")
	dSMSLeft   = desc("cellagent_gateway_quota_sms_left", "SMS allowance left as the operator API last reported it.")
	dRecovery  = desc("cellagent_gateway_recovery_events_total", "Recovery events seen by this exporter, by ladder step and outcome.", "step", "outcome")
	dRecovDay  = desc("cellagent_gateway_recovery_steps_today", "Recovery steps the gateway ran today, as it reports in its health.")
	dSMSIn     = desc("cellagent_gateway_sms_received_total", "Incoming SMS the gateway forwarded, seen by this exporter.")
	dSMSOut    = desc("cellagent_gateway_sms_sent_results_total", "Outcomes of outgoing SMS seen by this exporter, by state (sent, delivered, failed).", "state")
	dGaps      = desc("cellagent_gateway_telemetry_gaps_total", "Telemetry messages missing by their sequence numbers, seen by this exporter.")
	dQueue     = desc("cellagent_gateway_queue_depth", "Messages waiting in the gateway's durable queues, by queue (events, telemetry).", "queue")
	dDropped   = desc("cellagent_gateway_telemetry_dropped_total", "Telemetry samples the gateway dropped from its full queue, ever.")
	dUptime    = desc("cellagent_gateway_agent_uptime_seconds", "Seconds since the gateway's agent started.")
	dGateways  = fleetDesc("cellagent_fleet_gateways", "Gateways in the exporter's view (stale ones excluded), by state.", "state")
	allDescs   = []*prometheus.Desc{dInfo, dNetwork, dUp, dSession, dLastSeen, dReg, dRSSI, dRSRP, dRSRQ, dSINR, dDataLeft, dSMSLeft, dRecovery, dRecovDay, dSMSIn, dSMSOut, dGaps, dQueue, dDropped, dUptime, dGateways}
	regDomains = []string{"cs", "ps", "eps"}
)

func fleetDesc(name, help string, labels ...string) *prometheus.Desc {
	names = append(names, name)
	return prometheus.NewDesc(name, help, labels, nil)
}

// Names lists the metric names the collector serves, sorted.
func Names() []string {
	out := slices.Clone(names)
	slices.Sort(out)
	return out
}

// Describe sends every descriptor.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect sends the samples of every gateway heard from within the stale
// limit.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
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
		collectGateway(ch, &g)
	}
	ch <- prometheus.MustNewConstMetric(dGateways, prometheus.GaugeValue, float64(online), "online")
	ch <- prometheus.MustNewConstMetric(dGateways, prometheus.GaugeValue, float64(offline), "offline")
}

func collectGateway(ch chan<- prometheus.Metric, g *mqtt.Gateway) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{g.ID}, labels...)...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, append([]string{g.ID}, labels...)...)
	}
	if g.Identity != (mqtt.Identity{}) {
		gauge(dInfo, 1, g.IMEI, g.ICCID, g.Model, g.Firmware, g.Agent)
	}
	if g.Act != "" || g.Operator != "" {
		gauge(dNetwork, 1, g.Act, g.Operator)
	}
	gauge(dUp, b2f(g.Online))
	if g.Session > 0 {
		gauge(dSession, float64(g.Session))
	}
	if !g.LastSeen.IsZero() {
		gauge(dLastSeen, float64(g.LastSeen.UnixMilli())/1e3)
	}
	for i, st := range []string{g.RegDomains.CS, g.RegDomains.PS, g.RegDomains.EPS} {
		if st == "" {
			continue // the domain was not read: no state to set
		}
		if !slices.Contains(RegStates, st) {
			st = "other"
		}
		for _, s := range RegStates {
			gauge(dReg, b2f(s == st), regDomains[i], s)
		}
	}
	if g.RSSI != nil {
		gauge(dRSSI, float64(*g.RSSI))
	}
	if g.RSRP != nil {
		gauge(dRSRP, float64(*g.RSRP))
	}
	if g.RSRQ != nil {
		gauge(dRSRQ, float64(*g.RSRQ))
	}
	if g.SINR != nil {
		gauge(dSINR, *g.SINR)
	}
	if q := g.Quota; q != nil {
		if q.DataLeft != nil {
			gauge(dDataLeft, *q.DataLeft)
		}
		if q.SMSLeft != nil {
			gauge(dSMSLeft, *q.SMSLeft)
		}
	}
	for _, k := range sortedKeys(g.Recoveries) {
		step, outcome, _ := strings.Cut(k, "/")
		counter(dRecovery, float64(g.Recoveries[k]), step, outcome)
	}
	counter(dSMSIn, float64(g.SMSIn))
	for _, st := range sortedKeys(g.SMSOut) {
		counter(dSMSOut, float64(g.SMSOut[st]), st)
	}
	counter(dGaps, float64(g.Gaps))
	if h := g.Health; h != nil {
		gauge(dQueue, float64(h.EventsQueued), "events")
		gauge(dQueue, float64(h.TelemetryQueued), "telemetry")
		counter(dDropped, float64(h.TelemetryDropped))
		gauge(dRecovDay, float64(h.Recoveries))
		gauge(dUptime, float64(h.Uptime))
	}
}

func sortedKeys(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmp.Compare)
	return keys
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
