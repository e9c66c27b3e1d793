package jsonouttest

import (
	"encoding/json"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, c := range []struct {
		doc  string
		want string
	}{
		{`{"v":1,"last_seen":"2026-03-01T12:00:00Z","cells":[{"tac":"1a2b"}]}`, ""},
		{`[1]`, "not a JSON object"},
		{`{"v":2}`, `no "v": 1 at the top`},
		{`{"v":1,"lastSeen":1}`, "key lastSeen is not snake_case"},
		{`{"v":1,"cells":[{"at":"2026-03-01T13:00:00+01:00"}]}`, "cells: at: time 2026-03-01T13:00:00+01:00 is not UTC at whole seconds (2006-01-02T15:04:05Z)"},
	} {
		var doc any
		if err := json.Unmarshal([]byte(c.doc), &doc); err != nil {
			t.Fatal(err)
		}
		if got := Check(doc, true); got != c.want {
			t.Errorf("Check(%s) = %q, want %q", c.doc, got, c.want)
		}
	}
}
