package fleetmetrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves /metrics: the fleet's metrics beside the exporter's own
// process and Go runtime metrics, in a registry of its own so nothing
// else registered in the binary leaks into it.
func Handler(src Source, stale time.Duration) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(New(src, stale, nil),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector())
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		// A scrape that cannot be served whole is refused, so
		// Prometheus marks the target down instead of storing part
		// of the fleet.
		ErrorHandling:       promhttp.HTTPErrorOnError,
		MaxRequestsInFlight: 4,
	}))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><title>cellagent fleet exporter</title><p><a href="/metrics">/metrics</a>`))
	})
	return mux
}
