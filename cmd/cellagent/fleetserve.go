package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"cellagent/transport/fleetmetrics"
	"cellagent/transport/fleetview"
	"cellagent/transport/mqtt"
)

func runFleetExporter(ctx context.Context, e *env, args []string) error {
	var bf brokerFlags
	var listen string
	var stale time.Duration
	fs := newFlags(e, "fleet exporter", "--broker URL [--listen ADDR] [--stale D] [flags]",
		`Serve the gateways under the prefix as Prometheus metrics on
http://ADDR/metrics: state, session, last seen, registration per domain,
access technology, signal, quota, recovery steps, SMS counts, telemetry
gaps and queue depths, one series per gateway (label "gateway"). Counters
count what this exporter saw since it started. A gateway not heard from
for --stale drops out of the metrics. The metric list is in
docs/fleet-tools.md.

Examples:
  cellagent fleet exporter --broker tls://broker.example.com --ca-file ca.pem \
      --username fleet --password-file /etc/cellagent/fleet.pass --listen :9860
  cellagent fleet exporter --broker tcp://127.0.0.1:1883 --allow-plaintext`)
	bf.register(fs)
	_ = fs.MarkHidden("json") // it prints nothing to format
	fs.StringVar(&listen, "listen", "127.0.0.1:9860", "address of the metrics endpoint (':9860' for every interface)")
	fs.DurationVar(&stale, "stale", 24*time.Hour, "leave out gateways not heard from for this long; 0 keeps them")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if stale < 0 {
		return usageError{errors.New("--stale must not be negative")}
	}
	return followAndServe(ctx, e, &bf, listen, func(f *mqtt.Fleet) serving {
		return serving{handler: fleetmetrics.Handler(f, stale)}
	})
}

func runFleetServe(ctx context.Context, e *env, args []string) error {
	var bf brokerFlags
	var listen string
	var window, resolution time.Duration
	fs := newFlags(e, "fleet serve", "--broker URL [--listen ADDR] [flags]",
		`Serve a live web view of the gateways under the prefix: the fleet table
with state colours and a sparkline of RSRP and SINR per gateway, a
timeline of recovery steps and events, and a page per gateway with its
signal history, events and last SMS. One page with everything embedded,
updated through server-sent events. It listens on loopback unless told
otherwise: it has no login.

Examples:
  cellagent fleet serve --broker tls://broker.example.com --ca-file ca.pem \
      --username fleet --password-file /etc/cellagent/fleet.pass
  cellagent fleet serve --broker tcp://127.0.0.1:1883 --allow-plaintext --listen 127.0.0.1:9861`)
	bf.register(fs)
	_ = fs.MarkHidden("json") // it prints nothing to format
	fs.StringVar(&listen, "listen", "127.0.0.1:9861", "address of the web view")
	fs.DurationVar(&window, "window", 6*time.Hour, "how much signal history to keep and plot")
	fs.DurationVar(&resolution, "resolution", time.Minute, "keep one signal sample per gateway per this step (the last)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if window <= 0 || resolution <= 0 {
		return usageError{errors.New("--window and --resolution must be positive")}
	}
	return followAndServe(ctx, e, &bf, listen, func(*mqtt.Fleet) serving {
		v := fleetview.New(fleetview.Options{Window: window, Resolution: resolution})
		return serving{handler: v.Handler(), onMessage: v.Apply, loop: v.Run}
	})
}

// serving is what fleet exporter or fleet serve puts on HTTP: a handler,
// optionally a hook for the reader's messages and a loop to run beside.
type serving struct {
	handler   http.Handler
	onMessage func(mqtt.Gateway, mqtt.FleetMessage)
	loop      func(context.Context) error
}

// followAndServe checks the broker once (a wrong URL or login fails at
// once, as in fleet watch), then follows the fleet and serves HTTP on
// listen until ctx ends.
func followAndServe(ctx context.Context, e *env, bf *brokerFlags, listen string, build func(*mqtt.Fleet) serving) error {
	o, err := bf.options()
	if err != nil {
		return err
	}
	probe := o
	probe.Logger = slog.New(slog.DiscardHandler)
	if _, err := mqtt.List(ctx, probe, bf.settle); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return bf.explain(err)
	}
	o.Logger = logger(e.stderr, false)
	// The handler reads the reader and the reader feeds the hook: the
	// hook is reached through s, set before the reader runs.
	var s serving
	o.OnMessage = func(g mqtt.Gateway, m mqtt.FleetMessage) {
		if s.onMessage != nil {
			s.onMessage(g, m)
		}
	}
	f, err := mqtt.NewFleet(o)
	if err != nil {
		return err
	}
	s = build(f)
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return usageError{fmt.Errorf("--listen %s: %w", listen, err)}
	}
	fmt.Fprintf(e.stderr, "serving http://%s/\n", ln.Addr())
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() { errc <- f.Run(ctx) }()
	n := 1
	if s.loop != nil {
		n++
		go func() { errc <- s.loop(ctx) }()
	}
	go func() {
		<-ctx.Done()
		sctx, c := context.WithTimeout(context.Background(), 2*time.Second)
		defer c()
		_ = srv.Shutdown(sctx)
	}()
	err = srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	cancel()
	for range n {
		if rerr := <-errc; err == nil {
			err = rerr
		}
	}
	return err
}
