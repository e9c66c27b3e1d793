package fleetmetrics

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file writes the Prometheus text exposition format, version 0.0.4
// (prometheus.io/docs/instrumenting/exposition_formats). It replaces
// client_golang's registry and encoder: merely linking client_golang
// costs every process of the cellagent binary, the gateway daemon
// included, about 4.6 MiB of file-backed and 0.6 MiB of anonymous
// resident memory for a tool only the fleet side runs (BENCHMARKS.md).

// contentType is what the text format is served as.
const contentType = "text/plain; version=0.0.4; charset=utf-8"

type metricType uint8

const (
	untyped metricType = iota
	gauge
	counter
)

func (t metricType) String() string {
	switch t {
	case gauge:
		return "gauge"
	case counter:
		return "counter"
	}
	return "untyped"
}

// desc describes one metric family.
type desc struct {
	name, help string
	typ        metricType
	labels     []string // label names, in the order samples give values
	byName     []int    // indices into labels, sorted by label name
}

func newDesc(name, help string, typ metricType, labels ...string) *desc {
	d := &desc{name: name, help: help, typ: typ, labels: labels, byName: make([]int, len(labels))}
	for i := range d.byName {
		d.byName[i] = i
	}
	slices.SortFunc(d.byName, func(a, b int) int { return cmp.Compare(labels[a], labels[b]) })
	return d
}

// sample is one series of a family: label values in the order of the
// family's label names, and the value.
type sample struct {
	values []string
	value  float64
}

// family is a desc with the samples of one scrape.
type family struct {
	d       *desc
	samples []sample
}

// encode appends the text format of fams to buf: families sorted by name
// (empty ones left out), labels by name, series by their label values in
// that order, the way Prometheus' own encoder orders them so outputs can
// be compared. It sorts the samples of fams in place. A family met twice, two series with the same labels or a
// label value that is not UTF-8 is an error: Prometheus would reject the
// scrape anyway, and a partial one must not be served.
func encode(buf []byte, fams []family) ([]byte, error) {
	fams = slices.Clone(fams)
	slices.SortFunc(fams, func(a, b family) int { return cmp.Compare(a.d.name, b.d.name) })
	for i, f := range fams {
		if i > 0 && fams[i-1].d.name == f.d.name {
			return buf, fmt.Errorf("metric family %s collected twice", f.d.name)
		}
		if len(f.samples) == 0 {
			continue
		}
		d := f.d
		ss := f.samples
		for _, s := range ss {
			if len(s.values) != len(d.labels) {
				return buf, fmt.Errorf("%s: %d label values for %d labels", d.name, len(s.values), len(d.labels))
			}
			for _, v := range s.values {
				if !utf8.ValidString(v) {
					return buf, fmt.Errorf("%s: label value %q is not UTF-8", d.name, v)
				}
			}
		}
		compare := func(a, b sample) int {
			for _, j := range d.byName {
				if c := strings.Compare(a.values[j], b.values[j]); c != 0 {
					return c
				}
			}
			return 0
		}
		slices.SortFunc(ss, compare)
		for j := 1; j < len(ss); j++ {
			if compare(ss[j-1], ss[j]) == 0 {
				return buf, fmt.Errorf("%s: two series with labels %q", d.name, ss[j].values)
			}
		}
		buf = append(buf, "# HELP "...)
		buf = append(buf, d.name...)
		buf = append(buf, ' ')
		buf = appendEscaped(buf, d.help, false)
		buf = append(buf, "\n# TYPE "...)
		buf = append(buf, d.name...)
		buf = append(buf, ' ')
		buf = append(buf, d.typ.String()...)
		buf = append(buf, '\n')
		for _, s := range ss {
			buf = append(buf, d.name...)
			for k, j := range d.byName {
				if k == 0 {
					buf = append(buf, '{')
				} else {
					buf = append(buf, ',')
				}
				buf = append(buf, d.labels[j]...)
				buf = append(buf, `="`...)
				buf = appendEscaped(buf, s.values[j], true)
				buf = append(buf, '"')
				if k == len(d.byName)-1 {
					buf = append(buf, '}')
				}
			}
			buf = append(buf, ' ')
			buf = appendFloat(buf, s.value)
			buf = append(buf, '\n')
		}
	}
	return buf, nil
}

// appendEscaped escapes backslash and newline, and in label values the
// double quote too, as the format requires.
func appendEscaped(buf []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			buf = append(buf, `\\`...)
		case c == '\n':
			buf = append(buf, `\n`...)
		case c == '"' && quote:
			buf = append(buf, `\"`...)
		default:
			buf = append(buf, c)
		}
	}
	return buf
}

// appendFloat writes a value as Prometheus' encoder does: the shortest
// 'g' form, with the format's spellings of the special values.
func appendFloat(buf []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(buf, "NaN"...)
	case math.IsInf(f, 1):
		return append(buf, "+Inf"...)
	case math.IsInf(f, -1):
		return append(buf, "-Inf"...)
	case f == 0:
		return append(buf, '0') // -0 too
	}
	return strconv.AppendFloat(buf, f, 'g', -1, 64)
}
