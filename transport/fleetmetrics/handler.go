package fleetmetrics

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// maxInFlight bounds concurrent scrapes: each holds a whole copy of the
// fleet's output.
const maxInFlight = 4

// Handler serves /metrics: the fleet's metrics beside a few of the
// exporter's own process and Go runtime metrics.
func Handler(src Source, stale time.Duration) http.Handler {
	c := New(src, stale, nil)
	slots := make(chan struct{}, maxInFlight)
	// A scrape of 1,000 gateways is 3 MB of text: its buffers are
	// reused, or made the size of the last scrape, rather than grown
	// anew each time.
	var lastSize atomic.Int64
	texts := sync.Pool{New: func() any {
		b := make([]byte, 0, lastSize.Load()*9/8)
		return &b
	}}
	zipped := sync.Pool{New: func() any { return new(bytes.Buffer) }}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
		default:
			http.Error(w, "too many scrapes in flight", http.StatusServiceUnavailable)
			return
		}
		fams := append(c.collect(), selfMetrics()...)
		// A scrape that cannot be served whole is refused, so
		// Prometheus marks the target down instead of storing part
		// of the fleet.
		text := texts.Get().(*[]byte)
		defer texts.Put(text)
		out, err := encode((*text)[:0], fams)
		*text = out
		lastSize.Store(int64(len(out)))
		if err != nil {
			slog.Error("fleet exporter: scrape refused", "err", err)
			http.Error(w, "encoding the metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", contentType)
		if !acceptsGzip(r.Header.Get("Accept-Encoding")) {
			w.Header().Set("Content-Length", strconv.Itoa(len(out)))
			_, _ = w.Write(out)
			return
		}
		buf := zipped.Get().(*bytes.Buffer)
		defer zipped.Put(buf)
		buf.Reset()
		zw, _ := gzip.NewWriterLevel(buf, gzip.BestSpeed)
		_, _ = zw.Write(out)
		_ = zw.Close()
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
		_, _ = w.Write(buf.Bytes())
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><title>cellagent fleet exporter</title><p><a href="/metrics">/metrics</a>`))
	})
	return mux
}

// acceptsGzip tells whether an Accept-Encoding header lists gzip without
// refusing it (q=0).
func acceptsGzip(header string) bool {
	for part := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q, ok := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q=")
		if !ok {
			return true
		}
		v, err := strconv.ParseFloat(q, 64)
		return err == nil && v > 0
	}
	return false
}

var (
	dCPU        = newDesc("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", counter)
	dRSS        = newDesc("process_resident_memory_bytes", "Resident memory size in bytes.", gauge)
	dFDs        = newDesc("process_open_fds", "Number of open file descriptors.", gauge)
	dGoroutines = newDesc("go_goroutines", "Number of goroutines that currently exist.", gauge)
	dHeap       = newDesc("go_memstats_heap_alloc_bytes", "Number of heap bytes allocated and currently in use.", gauge)
	dGoInfo     = newDesc("go_info", "Information about the Go environment.", gauge, "version")
)

// heapObjects is runtime/metrics' name for what MemStats calls HeapAlloc.
const heapObjects = "/memory/classes/heap/objects:bytes"

// selfMetrics are the exporter's own process and runtime figures, the
// part of client_golang's process and Go collectors a fleet operator
// watches. A figure the system does not give is left out.
func selfMetrics() []family {
	one := func(d *desc, v float64, labels ...string) family {
		return family{d: d, samples: []sample{{values: labels, value: v}}}
	}
	fams := []family{one(dGoroutines, float64(runtime.NumGoroutine())), one(dGoInfo, 1, runtime.Version())}
	heap := []metrics.Sample{{Name: heapObjects}}
	metrics.Read(heap)
	if heap[0].Value.Kind() == metrics.KindUint64 {
		fams = append(fams, one(dHeap, float64(heap[0].Value.Uint64())))
	}
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) == nil {
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		fams = append(fams, one(dCPU, cpu.Seconds()))
	}
	if rss, err := residentBytes(); err == nil {
		fams = append(fams, one(dRSS, float64(rss)))
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		fams = append(fams, one(dFDs, float64(len(fds))))
	}
	return fams
}

// residentBytes reads the resident set from /proc/self/statm (proc(5):
// its second field, in pages).
func residentBytes() (int64, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("/proc/self/statm: %q", b)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/self/statm: %w", err)
	}
	return pages * int64(os.Getpagesize()), nil
}
