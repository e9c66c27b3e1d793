// Package jsonout holds the conventions of the JSON the agent and its
// command line print for people's scripts: the status file and every
// --json output. They are contracts, documented with examples in
// transport/mqtt/SCHEMA.md ("Command-line JSON and the status file"):
// every object opens with "v", keys are snake_case, times are UTC at whole
// seconds, cell ids and area codes are hex strings as in telemetry.
package jsonout

import (
	"encoding/json"
	"io"
	"regexp"
	"time"
)

// Version is the "v" of every command-line JSON output and of the status
// file. Within a version fields are only added.
const Version = 1

// UTC is the one time form: encoding/json writes a UTC time at whole
// seconds as RFC 3339 "2006-01-02T15:04:05Z", so every time sorts as text
// and no reader needs the host's zone. The zero time stays zero, for
// omitzero.
func UTC(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Second)
}

// Write prints v indented, one object per call.
func Write(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

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
		if v, ok := m["v"].(float64); !ok || v != Version {
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
