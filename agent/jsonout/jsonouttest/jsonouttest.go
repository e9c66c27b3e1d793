// Package jsonouttest checks JSON against the conventions of
// agent/jsonout, for the tests of every command and document that prints
// or shows such JSON.
package jsonouttest

import (
	"regexp"

	"cellagent/agent/jsonout"
)

var (
	snake    = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	timeLike = regexp.MustCompile(`^\d{4}-\d\d-\d\dT`)
	timeForm = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)
)

// Check reports the first way doc, a decoded JSON value, breaks the
// conventions: a key that is not snake_case, a time not in the UTC form,
// or (when top is set) no "v" of Version at the top. Tests run it on the
// documented examples and on what the commands print.
func Check(doc any, top bool) string {
	if top {
		m, ok := doc.(map[string]any)
		if !ok {
			return "not a JSON object"
		}
		if v, ok := m["v"].(float64); !ok || v != jsonout.Version {
			return "no \"v\": 1 at the top"
		}
	}
	switch d := doc.(type) {
	case map[string]any:
		for k, v := range d {
			if !snake.MatchString(k) {
				return "key " + k + " is not snake_case"
			}
			if p := Check(v, false); p != "" {
				return k + ": " + p
			}
		}
	case []any:
		for _, v := range d {
			if p := Check(v, false); p != "" {
				return p
			}
		}
	case string:
		if timeLike.MatchString(d) && !timeForm.MatchString(d) {
			return "time " + d + " is not UTC at whole seconds (2006-01-02T15:04:05Z)"
		}
	}
	return ""
}
