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
