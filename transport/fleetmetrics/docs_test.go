package fleetmetrics

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var metricName = regexp.MustCompile(`\bcellagent_[a-z_]+\b`)

// The Grafana dashboard parses and names only metrics the exporter
// serves; docs/fleet-tools.md lists every one of them.
func TestDashboardAndDocs(t *testing.T) {
	b, err := os.ReadFile("../../docs/grafana/cellagent-fleet.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Templating struct {
			List []struct {
				Query any
			}
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	if len(d.Panels) == 0 {
		t.Fatal("dashboard without panels")
	}
	served := names()
	var exprs []string
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		q, _ := json.Marshal(v.Query)
		exprs = append(exprs, string(q))
	}
	used := map[string]bool{}
	for _, e := range exprs {
		for _, m := range metricName.FindAllString(e, -1) {
			used[m] = true
			if !slices.Contains(served, m) {
				t.Errorf("dashboard query %q names %s, which the exporter does not serve", e, m)
			}
		}
	}
	if len(used) < 10 {
		t.Errorf("dashboard uses only %d metrics", len(used))
	}
	doc, err := os.ReadFile("../../docs/fleet-tools.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, _ := strings.Cut(string(doc), "<!-- metrics -->")
	table, _, _ = strings.Cut(table, "\n\n")
	var documented []string
	for _, l := range strings.Split(table, "\n") {
		if m := regexp.MustCompile("^\\| `(cellagent_[a-z_]+)`").FindStringSubmatch(l); m != nil {
			documented = append(documented, m[1])
		}
	}
	slices.Sort(documented)
	if !slices.Equal(documented, served) {
		t.Errorf("documented metrics %v\nserved %v", documented, served)
	}
}
