package chaos

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// lateTrend is the least-squares slope per hour of RSS, its parts and the
// store over the samples from `from` on (the run's second half): a
// plateau shows as a slope near zero there, whatever the first half did.
func lateTrend(series []sample, from time.Duration) string {
	var late []sample
	for _, s := range series {
		if s.at >= from {
			late = append(late, s)
		}
	}
	if len(late) < 3 {
		return "trend over the second half: too few samples\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "trend per hour over the second half (%d samples from %s):", len(late), fmtMin(from))
	for _, m := range []struct {
		name string
		get  func(sample) float64
	}{
		{"RSS", func(s sample) float64 { return s.rss }},
		{"anon", func(s sample) float64 { return s.anon }},
		{"file", func(s sample) float64 { return s.file }},
		{"heap", func(s sample) float64 { return s.heap }},
		{"store", func(s sample) float64 { return s.db }},
	} {
		x := make([]float64, len(late))
		y := make([]float64, len(late))
		lo, hi := m.get(late[0]), m.get(late[0])
		for i, s := range late {
			x[i], y[i] = s.at.Hours(), m.get(s)
			lo, hi = min(lo, y[i]), max(hi, y[i])
		}
		fmt.Fprintf(&b, " %s %+.2f MiB/h (%.1f–%.1f);", m.name, slope(x, y), lo, hi)
	}
	b.WriteString("\n")
	return b.String()
}

// writeSamples writes the series to prefix.csv and a plot of the memory
// curves to prefix.svg. speedup converts the run's minutes into the hours
// of traffic they carried, shown on a second axis.
func writeSamples(prefix string, series []sample, speedup float64) error {
	var c strings.Builder
	c.WriteString("seconds,traffic_hours,rss_mib,anon_mib,file_mib,runtime_mib,heap_mib,store_mib,goroutines,fds,threads\n")
	for _, s := range series {
		fmt.Fprintf(&c, "%.0f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.3f,%.0f,%.0f,%.0f\n", s.at.Seconds(), s.at.Hours()*speedup,
			s.rss, s.anon, s.file, s.rt, s.heap, s.db, s.goroutines, s.fds, s.thrs)
	}
	if err := os.WriteFile(prefix+".csv", []byte(c.String()), 0o644); err != nil {
		return fmt.Errorf("samples: %w", err)
	}
	if err := os.WriteFile(prefix+".svg", []byte(plotSVG(series, speedup)), 0o644); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

// plotSVG draws RSS and its parts, the Go heap and the store file's size
// against time, with the 12 MiB goal as a dashed line. Plain SVG, so it
// needs no plotting tool and shows in a browser or on a forge.
func plotSVG(series []sample, speedup float64) string {
	const (
		w, h                   = 760, 400
		left, right, top, bott = 56, 150, 34, 52
		goal                   = 12.0
	)
	pw, ph := float64(w-left-right), float64(h-top-bott)
	tmax := time.Minute
	ymax := goal + 2
	for _, s := range series {
		tmax = max(tmax, s.at)
		ymax = max(ymax, s.rss+1)
	}
	ymax = float64(int(ymax/2)+1) * 2
	x := func(t time.Duration) float64 { return left + pw*float64(t)/float64(tmax) }
	y := func(v float64) float64 { return top + ph*(1-v/ymax) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14">cellagent run: memory under a day's SMS traffic (%.0f× fast), seven days of records in the store</text>`+"\n", left, speedup)
	for v := 0.0; v <= ymax; v += 2 {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%g</text>`+"\n",
			left, y(v), left+pw, y(v), left-6, y(v)+4, v)
	}
	step := 5 * time.Minute
	if tmax > 2*time.Hour {
		step = 30 * time.Minute
	}
	for t := time.Duration(0); t <= tmax; t += step {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.0f" stroke="#ddd"/><text x="%.1f" y="%.0f" text-anchor="middle">%d</text><text x="%.1f" y="%.0f" text-anchor="middle" fill="#777">%.0f h</text>`+"\n",
			x(t), top, x(t), top+ph, x(t), top+ph+16, int(t.Minutes()), x(t), top+ph+30, t.Hours()*speedup)
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%d" text-anchor="middle">minutes of the run (grey: hours of traffic pushed through)</text>`+"\n", left+pw/2, h-6)
	fmt.Fprintf(&b, `<text x="14" y="%.0f" transform="rotate(-90 14 %.0f)" text-anchor="middle">MiB</text>`+"\n", top+ph/2, top+ph/2)
	fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#c00" stroke-dasharray="6 4"/>`+"\n", left, y(goal), left+pw, y(goal))
	curves := []struct {
		name, color string
		get         func(sample) float64
	}{
		{"RSS", "#000", func(s sample) float64 { return s.rss }},
		{"file-backed", "#1f77b4", func(s sample) float64 { return s.file }},
		{"anonymous", "#ff7f0e", func(s sample) float64 { return s.anon }},
		{"Go heap in use", "#2ca02c", func(s sample) float64 { return s.heap }},
		{"store file", "#9467bd", func(s sample) float64 { return s.db }},
	}
	for i, c := range curves {
		var pts strings.Builder
		for _, s := range series {
			fmt.Fprintf(&pts, "%.1f,%.1f ", x(s.at), y(c.get(s)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", c.color, strings.TrimSpace(pts.String()))
		ly := top + 10 + 20*i
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%d" x2="%.0f" y2="%d" stroke="%s" stroke-width="2"/><text x="%.0f" y="%d">%s</text>`+"\n",
			left+pw+10, ly, left+pw+30, ly, c.color, left+pw+36, ly+4, c.name)
	}
	ly := top + 10 + 20*len(curves)
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%d" x2="%.0f" y2="%d" stroke="#c00" stroke-dasharray="6 4"/><text x="%.0f" y="%d">goal 12 MiB</text>`+"\n",
		left+pw+10, ly, left+pw+30, ly, left+pw+36, ly+4)
	b.WriteString("</svg>\n")
	return b.String()
}
