package fleetmetrics

import (
	"bytes"
	"compress/gzip"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestEncode(t *testing.T) {
	g := newDesc("a_gauge", "A gauge.", gauge, "zone", "id")
	cnt := newDesc("b_total", "A counter.", counter)
	un := newDesc("c_untyped", `Help with a \ and a
newline and "quotes".`, untyped, "v")
	tests := []struct {
		name string
		fams []family
		want string
	}{
		{"empty families are left out", []family{{d: g}, {d: cnt}}, ""},
		{"families by name, labels by name, series by label values in label-name order",
			[]family{
				{d: cnt, samples: []sample{{value: 3}}},
				{d: g, samples: []sample{
					{values: []string{"b", "2"}, value: 1},
					{values: []string{"a", "2"}, value: 2},
					{values: []string{"c", "1"}, value: 3},
					{values: []string{"b", "10"}, value: 4},
				}},
			}, `# HELP a_gauge A gauge.
# TYPE a_gauge gauge
a_gauge{id="1",zone="c"} 3
a_gauge{id="10",zone="b"} 4
a_gauge{id="2",zone="a"} 2
a_gauge{id="2",zone="b"} 1
# HELP b_total A counter.
# TYPE b_total counter
b_total 3
`},
		{"HELP escapes backslash and newline, label values also the double quote",
			[]family{{d: un, samples: []sample{
				{values: []string{`back\slash`}, value: 1},
				{values: []string{"new\nline"}, value: 2},
				{values: []string{`"quoted"`}, value: 3},
				{values: []string{"ünïcode {},=#"}, value: 4},
				{values: []string{""}, value: 5},
			}}}, `# HELP c_untyped Help with a \\ and a\nnewline and "quotes".
# TYPE c_untyped untyped
c_untyped{v=""} 5
c_untyped{v="\"quoted\""} 3
c_untyped{v="back\\slash"} 1
c_untyped{v="new\nline"} 2
c_untyped{v="ünïcode {},=#"} 4
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := encode(nil, tc.fams)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestEncodeFloats(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{0, "0"}, {math.Copysign(0, -1), "0"}, {1, "1"}, {-1, "-1"}, {-12, "-12"}, {7.4, "7.4"},
		{0.1, "0.1"}, {1e6, "1e+06"}, {734003200, "7.340032e+08"}, {1733341234.567, "1.733341234567e+09"},
		{123456, "123456"}, {1e-7, "1e-07"}, {math.MaxFloat64, "1.7976931348623157e+308"},
		{math.Inf(1), "+Inf"}, {math.Inf(-1), "-Inf"}, {math.NaN(), "NaN"},
	} {
		if got := string(appendFloat(nil, tc.v)); got != tc.want {
			t.Errorf("%v: got %q, want %q", tc.v, got, tc.want)
		}
	}
}

// Output Prometheus would reject, or that would be part of the fleet, is
// not written.
func TestEncodeRefuses(t *testing.T) {
	g := newDesc("g", "G.", gauge, "id")
	for name, fams := range map[string][]family{
		"two series with the same labels": {{d: g, samples: []sample{{values: []string{"x"}}, {values: []string{"y"}}, {values: []string{"x"}}}}},
		"a family twice":                  {{d: g, samples: []sample{{values: []string{"x"}}}}, {d: g, samples: []sample{{values: []string{"y"}}}}},
		"a label value not UTF-8":         {{d: g, samples: []sample{{values: []string{"\xff"}}}}},
		"a label value missing":           {{d: g, samples: []sample{{}}}},
	} {
		if out, err := encode(nil, fams); err == nil {
			t.Errorf("%s: no error, output %q", name, out)
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	for h, want := range map[string]bool{
		"": false, "gzip": true, "deflate, gzip;q=1.0, *;q=0.5": true, "GZIP": true,
		"gzip;q=0": false, "gzip; q=0.0": false, "identity": false, "x-gzip": false, "br, gzip ; q=0.8": true,
	} {
		if got := acceptsGzip(h); got != want {
			t.Errorf("%q: %v, want %v", h, got, want)
		}
	}
}

// populated serves the exporter for the fleet of fleetMessages.
func populated(t *testing.T) *httptest.Server {
	t.Helper()
	f := newFleet(t)
	feed(f, fleetMessages(time.Now()))
	srv := httptest.NewServer(Handler(f, time.Hour))
	t.Cleanup(srv.Close)
	return srv
}

// scrape gets /metrics, gzipped or not.
func scrape(t *testing.T, srv *httptest.Server, gz bool) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	// A transport of its own: the default one would ask for gzip
	// itself and decode it out of sight.
	res, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("scrape: %d %v", res.StatusCode, err)
	}
	return res, b
}

func TestHandlerGzip(t *testing.T) {
	srv := populated(t)
	res, plain := scrape(t, srv, false)
	if ct := res.Header.Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" || res.Header.Get("Content-Encoding") != "" {
		t.Errorf("plain: Content-Type %q, Content-Encoding %q", ct, res.Header.Get("Content-Encoding"))
	}
	res, zipped := scrape(t, srv, true)
	if res.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("gzip asked for, Content-Encoding %q", res.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(zipped))
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	// The process figures change between scrapes; the fleet's do not.
	fleet := func(b []byte) string { return onlyFamilies(string(b), names()...) }
	if fleet(unzipped) != fleet(plain) || !strings.Contains(fleet(plain), `cellagent_gateway_up{gateway="gw-3"} 0`) {
		t.Errorf("gzip and plain differ:\n%s\n---\n%s", unzipped, plain)
	}
	for _, name := range []string{"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "go_goroutines", "go_memstats_heap_alloc_bytes", "go_info"} {
		if !strings.Contains(string(plain), "\n"+name) {
			t.Errorf("no %s in\n%s", name, plain)
		}
	}
}

// TestPromtoolCheckMetrics lints a scrape of a populated exporter with
// promtool from Debian's prometheus package: it fails on format errors
// and on the naming conventions (units, _total on counters only).
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not installed (make deps installs prometheus)")
		}
		t.Skip("promtool not installed (apt-get install prometheus, or make deps)")
	}
	_, body := scrape(t, populated(t), false)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s\nscrape:\n%s", err, out, body)
	}
}
