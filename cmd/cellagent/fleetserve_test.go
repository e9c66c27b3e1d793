package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"cellagent/agent/fleetload"
	"cellagent/transport/fleetview/browsertest"
	"cellagent/transport/mqtt/mqtttest"
)

// TestFleetServeBrowser runs `fleet serve` against a real broker fed by
// the fleet simulation (four gateways with agents on simulated modems,
// with signal changes, outages and SMS), loads the page in headless
// Chromium and checks the rendered DOM: a row per gateway in a state
// colour, sparklines, the timeline, and a gateway's page. With
// FLEETVIEW_SCREENSHOT set it saves a screenshot there (docs/fleet-view.png
// in the README comes from it).
func TestFleetServeBrowser(t *testing.T) {
	const n = 4
	start := time.Now()
	b := mqtttest.Start(t, mqtttest.Options{})
	br := browsertest.Start(t, 1400, 560)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	simLog := &mqtttest.Buffer{}
	simDone := make(chan error, 1)
	go func() {
		_, err := fleetload.Run(ctx, fleetload.Options{
			Count: n, Broker: b.URL(), AllowPlaintext: true, Seed: 3,
			Warmup: -1, Duration: 2 * time.Minute,
			Poll: time.Second, Heartbeat: 5 * time.Second,
			SignalEvery: 700 * time.Millisecond, OutageEvery: 4 * time.Second, SMSEvery: 2 * time.Second,
			Dir:    t.TempDir(),
			Logger: slog.New(slog.NewTextHandler(simLog, nil)),
		})
		simDone <- err
	}()
	port := mqtttest.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var out, errb mqtttest.Buffer
	serveDone := make(chan int, 1)
	go func() {
		serveDone <- run(ctx, &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb},
			[]string{"fleet", "serve", "--broker", b.URL(), "--allow-plaintext", "--listen", addr, "--settle", "200ms", "--resolution", "1s"})
	}()
	defer func() {
		cancel()
		<-simDone
		if code := <-serveDone; code != 0 {
			t.Errorf("fleet serve exited %d: %s", code, errb.String())
		}
	}()
	base := "http://" + addr
	for i := 0; ; i++ {
		if res, err := http.Get(base + "/"); err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			// One page, nothing to fetch from elsewhere.
			for _, ref := range []string{`src="`, `href="http`, "url(", "@import", `fetch("http`} {
				if strings.Contains(string(body), ref) {
					t.Errorf("the page loads something (%s)", ref)
				}
			}
			break
		}
		if i > 200 {
			t.Fatalf("fleet serve not listening: %s", errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	failed := func(what string, err error) {
		t.Helper()
		var dom string
		_ = br.Eval(context.Background(), "document.body.outerHTML", &dom)
		t.Fatalf("%s: %v\nserve: %s\nsim log tail: %s\nDOM: %.3000s", what, err, errb.String(), tailOf(simLog.String(), 2000), dom)
	}
	if err := br.Navigate(ctx, base+"/"); err != nil {
		t.Fatal(err)
	}
	wait := func(what, expr string) {
		t.Helper()
		wctx, c := context.WithTimeout(ctx, 60*time.Second)
		defer c()
		if err := br.WaitFor(wctx, expr); err != nil {
			failed(what, err)
		}
		t.Logf("%s: %s", time.Since(start).Round(100*time.Millisecond), what) // where a slow run spends its time
	}
	wait("every gateway online in the table",
		fmt.Sprintf(`document.querySelectorAll("#fleet tbody tr[data-state=online]").length == %d`, n))
	wait("a sparkline per gateway with RSRP and SINR lines",
		fmt.Sprintf(`document.querySelectorAll("#fleet td.spark svg polyline.rsrp").length == %d && document.querySelectorAll("#fleet td.spark svg polyline.sinr").length == %d`, n, n))
	wait("recovery steps or status changes in the timeline (outages happen every few seconds)",
		`document.querySelectorAll("#timeline li[data-kind=recovery]").length > 0`)
	wait("an SMS in the timeline", `document.querySelectorAll("#timeline li[data-kind=sms_in]").length > 0`)
	wait("sparklines with a history", `document.querySelector("#fleet td.spark polyline.rsrp").getAttribute("points").split(" ").length > 3`)
	wait("the header counts", fmt.Sprintf(`document.querySelector("#n-gateways").textContent == "%d gateways"`, n))

	// The rows carry their state as a class the stylesheet colours.
	var classes []string
	if err := br.Eval(ctx, `Array.from(document.querySelectorAll("#fleet tbody tr")).map(tr => tr.className + " " + getComputedStyle(tr.querySelector(".state")).backgroundColor)`, &classes); err != nil {
		t.Fatal(err)
	}
	for _, c := range classes {
		if !strings.HasPrefix(c, "state-") || !strings.Contains(c, "rgb(") {
			t.Errorf("row class and state colour %q", c)
		}
	}
	if path := os.Getenv("FLEETVIEW_SCREENSHOT"); path != "" {
		png, err := br.Screenshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// A gateway's page: its history, events and last SMS.
	var id string
	// One that has received an SMS.
	if err := br.Eval(ctx, `document.querySelector("#timeline li[data-kind=sms_in] a").textContent`, &id); err != nil {
		t.Fatal(err)
	}
	if err := br.Navigate(ctx, base+"/gateway/"+id); err != nil {
		t.Fatal(err)
	}
	wait("the gateway page's title", fmt.Sprintf(`document.querySelector("#gw-title").textContent.startsWith(%q)`, id))
	wait("the fleet table hidden", `getComputedStyle(document.querySelector("#fleet-view")).display == "none"`)
	wait("the gateway's signal plot", `document.querySelectorAll("#gw-plot svg polyline").length == 2`)
	wait("the gateway's identity", `document.querySelector("#gw-identity").textContent.includes("session")`)
	wait("the gateway's events", `document.querySelectorAll("#gw-events li").length > 0`)
	wait("the gateway's SMS", `document.querySelectorAll("#gw-sms li[data-kind=sms_in]").length > 0`)
	if path := os.Getenv("FLEETVIEW_SCREENSHOT"); path != "" {
		png, err := br.Screenshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(strings.TrimSuffix(path, ".png")+"-gateway.png", png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// runBackground runs a long-lived command in-process until the test
// ends, and returns its stderr.
func runBackground(t *testing.T, args ...string) (*mqtttest.Buffer, *mqtttest.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb mqtttest.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}, args) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("%v exited %d: %s", args, code, errb.String())
		}
	})
	return &out, &errb
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestFleetExporterCommand(t *testing.T) {
	broker := mqtttest.Start(t, mqtttest.Options{}).URL()
	seedFleet(newPublisher(t, broker), time.Now())
	addr := fmt.Sprintf("127.0.0.1:%d", mqtttest.FreePort(t))
	_, errb := runBackground(t, "fleet", "exporter", "--broker", broker, "--allow-plaintext", "--listen", addr, "--settle", "200ms")
	var body string
	waitUntil(t, "both gateways on /metrics", func() bool {
		res, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		body = string(b)
		return strings.Contains(body, `cellagent_gateway_up{gateway="gw-a"} 0`) && strings.Contains(body, `cellagent_gateway_up{gateway="gw-b"} 1`)
	})
	for _, want := range []string{`cellagent_gateway_rsrp_dbm{gateway="gw-b"} -95`, `cellagent_gateway_registration{domain="eps",gateway="gw-b",state="home"} 1`, "process_resident_memory_bytes"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !strings.Contains(errb.String(), "serving http://"+addr) {
		t.Errorf("stderr %q", errb.String())
	}
	o := cli(t, "", "fleet", "exporter", "--broker", broker, "--allow-plaintext", "--stale", "-1s")
	if o.code != 2 {
		t.Errorf("negative --stale: code %d stderr %q", o.code, o.stderr)
	}
}

func TestFleetWatchInflux(t *testing.T) {
	broker := mqtttest.Start(t, mqtttest.Options{}).URL()
	p := newPublisher(t, broker)
	seedFleet(p, time.Now())
	out, _ := runBackground(t, "fleet", "watch", "--broker", broker, "--allow-plaintext", "--format", "influx")
	waitUntil(t, "the retained messages as lines", func() bool { return strings.Count(out.String(), "\n") >= 4 })
	p.publish("cellagent/v1/gw-b/event", false, `{"v":1,"seq":1,"q":1,"ts":1735688400,"type":"recovery","level":"warn","msg":"cfun-reset: done","attrs":{"step":"cfun-reset","steps":2}}`)
	want := `cellagent_event,device=gw-b,level=warn,type=recovery msg="cfun-reset: done",attr_step="cfun-reset",attr_steps=2,seq=1i,replayed=false 1735688400000000000`
	waitUntil(t, "the event as a line", func() bool { return strings.Contains(out.String(), want+"\n") })
	for _, w := range []string{"cellagent_status,device=gw-a online=false,session=3i\n", "cellagent_telemetry,act=CAT-M1,device=gw-b,op=26201 rssi=-65i,rsrp=-95i"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
	o := cli(t, "", "fleet", "watch", "--broker", broker, "--allow-plaintext", "--format", "xml")
	if o.code != 2 || !strings.Contains(o.stderr, "want table, json or influx") {
		t.Errorf("--format xml: code %d stderr %q", o.code, o.stderr)
	}
}
