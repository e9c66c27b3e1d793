package fleetmetrics

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"cellagent/modem/clock/clocktest"
	"cellagent/transport/mqtt"
	"cellagent/transport/mqtt/mqtttest"
)

// fleetMessages are three gateways in the shapes of SCHEMA.md: gw-1
// online and registered, with a recovery step, an SMS each way and a
// gap of one in its telemetry; gw-2 online but searching; gw-3 offline.
func fleetMessages(now time.Time) [][3]string {
	ts := now.Unix()
	return [][3]string{
		{"cellagent/v1/gw-1/status", "r", fmt.Sprintf(`{"v":1,"state":"online","session":4,"ts":%d,"ka":300,"imei":"866425031234567","iccid":"8988228066601234567","model":"BG96","fw":"BG96MAR02A07M1G","agent":"0.4.0"}`, ts)},
		{"cellagent/v1/gw-1/telemetry", "r", fmt.Sprintf(`{"v":1,"seq":1,"q":10,"ts":%d,"reg":{"cs":"searching","eps":"home"},"act":"CAT-M1","op":"26201","rssi":-65,"rsrp":-95,"rsrq":-11,"sinr":7.4,"quota":{"status":"ACTIVE","data_left":734003200,"sms_left":88},"health":{"up":86400,"evq":2,"tmq":5,"tmdrop":3,"recov":1}}`, ts)},
		{"cellagent/v1/gw-1/telemetry", "", fmt.Sprintf(`{"v":1,"seq":2,"q":11,"ts":%d,"rsrp":-96}`, ts)},
		{"cellagent/v1/gw-1/telemetry", "", fmt.Sprintf(`{"v":1,"seq":4,"q":13,"ts":%d,"reg":{"cs":"searching","eps":"home"},"act":"CAT-M1","op":"26201","rssi":-67,"rsrp":-97,"rsrq":-12,"sinr":6.5}`, ts)},
		{"cellagent/v1/gw-1/event", "", fmt.Sprintf(`{"v":1,"seq":1,"q":11,"ts":%d,"type":"recovery","level":"info","msg":"cfun-reset: done","attrs":{"step":"cfun-reset","outcome":"done"}}`, ts)},
		{"cellagent/v1/gw-1/event", "", fmt.Sprintf(`{"v":1,"seq":1,"q":11,"ts":%d,"type":"recovery","level":"info","msg":"cfun-reset: done","attrs":{"step":"cfun-reset","outcome":"done"}}`, ts)},
		{"cellagent/v1/gw-1/sms/in", "", `{"v":1,"seq":1,"q":12,"id":"c5e1","from":"+491701234567","received":"2025-01-01T00:00:03Z","text":"hi","parts":1,"pdus":["00"]}`},
		{"cellagent/v1/gw-1/sms/out/result", "", fmt.Sprintf(`{"v":1,"seq":1,"q":14,"ts":%d,"id":"op-7","state":"delivered"}`, ts)},
		{"cellagent/v1/gw-2/status", "r", fmt.Sprintf(`{"v":1,"state":"online","session":1,"ts":%d}`, ts)},
		{"cellagent/v1/gw-2/telemetry", "r", fmt.Sprintf(`{"v":1,"seq":1,"q":1,"ts":%d,"reg":{"eps":"searching"},"rssi":-101}`, ts)},
		{"cellagent/v1/gw-3/status", "r", `{"v":1,"state":"offline","session":9}`},
		{"cellagent/v1/gw-3/telemetry", "r", fmt.Sprintf(`{"v":1,"seq":2,"q":40,"ts":%d,"reg":{"eps":"home"},"act":"NB-IoT","rsrp":-120}`, ts)},
	}
}

func feed(f *mqtt.Fleet, msgs [][3]string) {
	for _, m := range msgs {
		f.Apply(m[0], []byte(m[2]), m[1] == "r")
	}
}

func newFleet(t *testing.T) *mqtt.Fleet {
	t.Helper()
	f, err := mqtt.NewFleet(mqtt.FleetOptions{Conn: mqtt.Conn{Broker: "tcp://127.0.0.1:1", AllowPlaintext: true}})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestCollector(t *testing.T) {
	f := newFleet(t)
	now := time.Now()
	feed(f, fleetMessages(now))
	c := New(f, time.Hour, clocktest.New(now, 0))
	want := `# HELP cellagent_fleet_gateways Gateways in the exporter's view (stale ones excluded), by state.
# TYPE cellagent_fleet_gateways gauge
cellagent_fleet_gateways{state="offline"} 1
cellagent_fleet_gateways{state="online"} 2
# HELP cellagent_gateway_queue_depth Messages waiting in the gateway's durable queues, by queue (events, telemetry).
# TYPE cellagent_gateway_queue_depth gauge
cellagent_gateway_queue_depth{gateway="gw-1",queue="events"} 2
cellagent_gateway_queue_depth{gateway="gw-1",queue="telemetry"} 5
# HELP cellagent_gateway_quota_data_left_bytes Data allowance left as the operator API last reported it, bytes.
# TYPE cellagent_gateway_quota_data_left_bytes gauge
cellagent_gateway_quota_data_left_bytes{gateway="gw-1"} 7.340032e+08
# HELP cellagent_gateway_recovery_events_total Recovery events seen by this exporter, by ladder step and outcome.
# TYPE cellagent_gateway_recovery_events_total counter
cellagent_gateway_recovery_events_total{gateway="gw-1",outcome="done",step="cfun-reset"} 1
# HELP cellagent_gateway_rsrq_db LTE reference signal received quality, dB.
# TYPE cellagent_gateway_rsrq_db gauge
cellagent_gateway_rsrq_db{gateway="gw-1"} -12
# HELP cellagent_gateway_sms_received_total Incoming SMS the gateway forwarded, seen by this exporter.
# TYPE cellagent_gateway_sms_received_total counter
cellagent_gateway_sms_received_total{gateway="gw-1"} 1
cellagent_gateway_sms_received_total{gateway="gw-2"} 0
cellagent_gateway_sms_received_total{gateway="gw-3"} 0
# HELP cellagent_gateway_sms_sent_results_total Outcomes of outgoing SMS seen by this exporter, by state (sent, delivered, failed).
# TYPE cellagent_gateway_sms_sent_results_total counter
cellagent_gateway_sms_sent_results_total{gateway="gw-1",state="delivered"} 1
# HELP cellagent_gateway_telemetry_gaps_total Telemetry messages missing by their sequence numbers, seen by this exporter.
# TYPE cellagent_gateway_telemetry_gaps_total counter
cellagent_gateway_telemetry_gaps_total{gateway="gw-1"} 1
cellagent_gateway_telemetry_gaps_total{gateway="gw-2"} 0
cellagent_gateway_telemetry_gaps_total{gateway="gw-3"} 0
# HELP cellagent_gateway_up 1 if the gateway's retained status is online, 0 after its last will or clean shutdown.
# TYPE cellagent_gateway_up gauge
cellagent_gateway_up{gateway="gw-1"} 1
cellagent_gateway_up{gateway="gw-2"} 1
cellagent_gateway_up{gateway="gw-3"} 0
`
	fams := c.collect()
	out, err := encode(nil, fams)
	if err != nil {
		t.Fatal(err)
	}
	if got := onlyFamilies(string(out), "cellagent_gateway_up", "cellagent_gateway_recovery_events_total", "cellagent_gateway_telemetry_gaps_total",
		"cellagent_gateway_queue_depth", "cellagent_gateway_sms_sent_results_total", "cellagent_gateway_sms_received_total",
		"cellagent_gateway_quota_data_left_bytes", "cellagent_gateway_rsrq_db", "cellagent_fleet_gateways"); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// The registration of each domain read is a state set: one state 1.
	ones := map[string]string{}
	for _, s := range fams[dReg].samples {
		gateway, domain, state := s.values[0], s.values[1], s.values[2]
		if s.value == 1 {
			k := gateway + "/" + domain
			if ones[k] != "" {
				t.Errorf("%s: two states set", k)
			}
			ones[k] = state
		}
	}
	wantReg := map[string]string{"gw-1/cs": "searching", "gw-1/eps": "home", "gw-2/eps": "searching", "gw-3/eps": "home"}
	if fmt.Sprint(ones) != fmt.Sprint(wantReg) {
		t.Errorf("registration state set %v, want %v", ones, wantReg)
	}
}

// onlyFamilies keeps the lines of the named families of a text-format
// output.
func onlyFamilies(text string, names ...string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(text, "\n") {
		name := l
		if rest, ok := strings.CutPrefix(l, "# "); ok {
			_, name, _ = strings.Cut(rest, " ")
		}
		if i := strings.IndexAny(name, "{ "); i >= 0 {
			name = name[:i]
		}
		if slices.Contains(names, name) {
			b.WriteString(l)
		}
	}
	return b.String()
}

// A gateway not heard from for the stale limit leaves the metrics.
func TestCollectorStale(t *testing.T) {
	f := newFleet(t)
	now := time.Now()
	// Retained messages only: last seen is then the payloads' ts.
	for _, m := range fleetMessages(now.Add(-2 * time.Hour)) {
		if m[1] == "r" {
			f.Apply(m[0], []byte(m[2]), true)
		}
	}
	f.Apply("cellagent/v1/gw-2/telemetry", []byte(fmt.Sprintf(`{"v":1,"seq":2,"q":2,"ts":%d,"rssi":-90}`, now.Unix())), true)
	c := New(f, time.Hour, clocktest.New(now, 0))
	if n := len(c.collect()[dUp].samples); n != 1 {
		t.Errorf("%d gateways up/down, want 1 (gw-2; the others are stale)", n)
	}
	if n := len(New(f, 0, clocktest.New(now, 0)).collect()[dUp].samples); n != 3 {
		t.Errorf("without a stale limit %d gateways, want 3", n)
	}
}

// TestPrometheusScrapes runs Debian's prometheus against the exporter's
// handler, fed from a real broker, and finds each gateway's series
// through Prometheus' HTTP API.
func TestPrometheusScrapes(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("prometheus not installed (make deps installs it)")
		}
		t.Skip("prometheus not installed (apt-get install prometheus, or make deps)")
	}
	broker := mqtttest.Start(t, mqtttest.Options{})
	pub := paho.NewClient(paho.NewClientOptions().AddBroker(broker.URL()).SetClientID("test-gateways"))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer pub.Disconnect(100)
	for _, m := range fleetMessages(time.Now()) {
		if m[1] != "r" {
			continue // the live ones need a subscriber
		}
		if tok := pub.Publish(m[0], 1, true, m[2]); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	f, err := mqtt.NewFleet(mqtt.FleetOptions{Conn: mqtt.Conn{Broker: broker.URL(), AllowPlaintext: true}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	defer func() { cancel(); <-done }()
	exporter := httptest.NewServer(Handler(f, time.Hour))
	defer exporter.Close()

	dir := t.TempDir()
	port := mqtttest.FreePort(t)
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: cellagent-fleet\n    static_configs:\n      - targets: ['%s']\n",
		strings.TrimPrefix(exporter.URL, "http://"))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(promBin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	query := func(q string) (map[string]string, error) {
		res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/query?query=%s", port, url.QueryEscape(q)))
		if err != nil {
			return nil, err
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		var r struct {
			Status string
			Data   struct {
				Result []struct {
					Metric map[string]string
					Value  [2]any
				}
			}
		}
		if err := json.Unmarshal(b, &r); err != nil || r.Status != "success" {
			return nil, fmt.Errorf("%s: %v %s", q, err, b)
		}
		out := map[string]string{}
		for _, s := range r.Data.Result {
			out[s.Metric["gateway"]] = fmt.Sprint(s.Value[1])
		}
		return out, nil
	}
	want := map[string]string{
		`cellagent_gateway_up`:                                       "gw-1:1 gw-2:1 gw-3:0",
		`cellagent_gateway_rsrp_dbm`:                                 "gw-1:-95 gw-3:-120",
		`cellagent_gateway_registration{domain="eps"} == 1`:          "gw-1:1 gw-2:1 gw-3:1",
		`cellagent_gateway_network_info{access_technology="NB-IoT"}`: "gw-3:1",
	}
	deadline := time.Now().Add(30 * time.Second)
	for q, w := range want {
		var got string
		for {
			m, err := query(q)
			var parts []string
			for gw, v := range m {
				parts = append(parts, gw+":"+v)
			}
			slices.Sort(parts)
			got = strings.Join(parts, " ")
			if err == nil && got == w {
				break
			}
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
				t.Fatalf("%s: got %q (err %v), want %q\nprometheus log tail:\n%s", q, got, err, w, tail(string(log), 1500))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// Prometheus judged the scrape healthy.
	if m, err := query(`up{job="cellagent-fleet"}`); err != nil || m[""] != "1" {
		t.Errorf("up of the exporter: %v %v", m, err)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func TestNames(t *testing.T) {
	got := names()
	if len(got) != len(allDescs) || !slices.IsSorted(got) || !slices.Contains(got, "cellagent_gateway_up") {
		t.Fatalf("names() = %v", got)
	}
}

// BenchmarkScrape serves /metrics for 1,000 gateways in the shape the
// fleet simulation gives them (three domains read, signal, health).
func BenchmarkScrape(b *testing.B) {
	f, err := mqtt.NewFleet(mqtt.FleetOptions{Conn: mqtt.Conn{Broker: "tcp://127.0.0.1:1", AllowPlaintext: true}})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for i := range 1000 {
		id := fmt.Sprintf("8988228066600000%04d", i)
		f.Apply("cellagent/v1/"+id+"/status", []byte(`{"v":1,"state":"online","session":1,"model":"BG96","fw":"BG96MAR02A07M1G","agent":"0.4.0","imei":"866425031234567","iccid":"`+id+`"}`), false)
		f.Apply("cellagent/v1/"+id+"/telemetry", []byte(fmt.Sprintf(`{"v":1,"seq":1,"q":1,"ts":%d,"reg":{"cs":"searching","ps":"home","eps":"home"},"act":"CAT-M1","op":"26201","rssi":-65,"rsrp":-95,"rsrq":-11,"sinr":7.4,"health":{"up":100,"evq":0,"tmq":1}}`, now.Unix())), false)
		f.Apply("cellagent/v1/"+id+"/event", []byte(`{"v":1,"seq":1,"q":2,"ts":1,"type":"recovery","attrs":{"step":"observe","outcome":"watching"}}`), false)
	}
	h := Handler(f, time.Hour)
	for _, gz := range []bool{false, true} {
		b.Run(fmt.Sprintf("gzip=%v", gz), func(b *testing.B) {
			var size int
			for b.Loop() {
				req := httptest.NewRequest("GET", "/metrics", nil)
				if gz {
					req.Header.Set("Accept-Encoding", "gzip")
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				size = rec.Body.Len()
			}
			b.ReportMetric(float64(size), "bytes/scrape")
		})
	}
}

// names lists the metric names the collector serves, sorted.
func names() []string {
	out := make([]string, len(allDescs))
	for i, d := range allDescs {
		out[i] = d.name
	}
	slices.Sort(out)
	return out
}
