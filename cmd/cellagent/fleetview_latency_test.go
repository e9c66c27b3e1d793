package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"cellagent/transport/fleetview/browsertest"
)

// TestFleetViewLatency measures a running `fleet serve` (FLEETVIEW_URL)
// from the publish of a probe gateway's telemetry on its broker
// (FLEETVIEW_BROKER) to the new value in the page's DOM in headless
// Chromium, FLEETVIEW_PROBES times (default 40). scripts/bench-fleet runs
// it beside the fleet simulation; it prints figures and asserts none.
func TestFleetViewLatency(t *testing.T) {
	base, broker := os.Getenv("FLEETVIEW_URL"), os.Getenv("FLEETVIEW_BROKER")
	if base == "" || broker == "" {
		t.Skip("FLEETVIEW_URL and FLEETVIEW_BROKER not set (scripts/bench-fleet sets them)")
	}
	probes := 40
	if n, err := strconv.Atoi(os.Getenv("FLEETVIEW_PROBES")); err == nil && n > 0 {
		probes = n
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cli := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID("cellagent-fleetview-probe"))
	if tok := cli.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", broker, tok.Error())
	}
	defer cli.Disconnect(100)
	pub := func(topic string, qos byte, retained bool, payload string) {
		if tok := cli.Publish(topic, qos, retained, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	const id = "zz-probe"
	pub("cellagent/v1/"+id+"/status", 1, true, fmt.Sprintf(`{"v":1,"state":"online","session":1,"ts":%d}`, time.Now().Unix()))
	defer pub("cellagent/v1/"+id+"/status", 1, true, "") // clear the probe

	br := browsertest.Start(t, 1400, 900)
	if err := br.Navigate(ctx, base+"/"); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	if err := br.WaitFor(wctx, `document.getElementById("gw-`+id+`")`); err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := br.Eval(ctx, `document.querySelectorAll("#fleet tbody tr").length`, &rows); err != nil {
		t.Fatal(err)
	}
	// The first time each RSRP value shows in the probe's row, by the
	// page's clock (the same wall clock as ours: one machine).
	if err := br.Eval(ctx, `(() => { window.lat = {};
		new MutationObserver(() => {
			const tr = document.getElementById("gw-`+id+`"); if (!tr) return;
			const v = tr.children[5].textContent;
			if (!(v in window.lat)) window.lat[v] = performance.timeOrigin + performance.now();
		}).observe(document.querySelector("#fleet tbody"), {subtree: true, childList: true, characterData: true});
		return true; })()`, nil); err != nil {
		t.Fatal(err)
	}
	var lat []time.Duration
	for i := 1; i <= probes; i++ {
		rsrp := -50 - i
		sent := time.Now()
		pub("cellagent/v1/"+id+"/telemetry", 0, true, fmt.Sprintf(`{"v":1,"seq":%d,"q":%d,"ts":%d,"reg":{"eps":"home"},"act":"CAT-M1","rsrp":%d,"sinr":10}`, i, i, sent.Unix(), rsrp))
		var at float64
		for at == 0 {
			if err := br.Eval(ctx, fmt.Sprintf(`window.lat["%d"] || 0`, rsrp), &at); err != nil {
				t.Fatal(err)
			}
			if at == 0 {
				if time.Since(sent) > 30*time.Second {
					t.Fatalf("probe %d never shown", i)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		lat = append(lat, time.Duration((at-float64(sent.UnixNano())/1e6)*float64(time.Millisecond)))
		// Spread the probes over the view's batching tick.
		time.Sleep(time.Duration(300+37*i%200) * time.Millisecond)
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/1e6) }
	fmt.Printf("fleetview-latency rows=%d n=%d p50_ms=%s p90_ms=%s p99_ms=%s max_ms=%s\n", rows, len(lat), ms(pct(.5)), ms(pct(.9)), ms(pct(.99)), ms(lat[len(lat)-1]))
}
