package main

import (
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"

	"cellagent/agent"
	"cellagent/agent/jsonout/jsonouttest"
)

// Every command-line JSON example in SCHEMA.md decodes strictly into the
// type the command prints and follows the conventions, so the document
// and the commands cannot drift apart.
func TestCLIJSONExamples(t *testing.T) {
	doc, err := os.ReadFile("../../transport/mqtt/SCHEMA.md")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)<!-- cli example: ([a-z. ]+) -->\n```json\n(.*?)\n```")
	types := map[string]func() any{
		"status.json": func() any { return new(agent.Status) },
		"status":      func() any { return new(modemJSON) },
		"sms list":    func() any { return new(smsListJSON) },
		"bsc quota":   func() any { return new(quotaJSON) },
		"bsc reset":   func() any { return new(resetJSON) },
		"fleet list":  func() any { return new(fleetListJSON) },
		"fleet watch": func() any { return new(gatewayJSON) },
		"fleet send":  func() any { return new(sendJSON) },
	}
	seen := map[string]bool{}
	for _, m := range block.FindAllStringSubmatch(string(doc), -1) {
		name, payload := m[1], m[2]
		seen[name] = true
		mk, ok := types[name]
		if !ok {
			t.Errorf("example for unknown output %q", name)
			continue
		}
		dec := json.NewDecoder(strings.NewReader(payload))
		dec.DisallowUnknownFields()
		if err := dec.Decode(mk()); err != nil {
			t.Errorf("%s example: %v", name, err)
		}
		var v any
		if err := json.Unmarshal([]byte(payload), &v); err != nil {
			t.Fatal(err)
		}
		if p := jsonouttest.Check(v, true); p != "" {
			t.Errorf("%s example: %s", name, p)
		}
	}
	for name := range types {
		if !seen[name] {
			t.Errorf("SCHEMA.md has no example of %s", name)
		}
	}
}

// strictJSON decodes a command's --json output into v, refusing unknown
// fields, and checks the conventions.
func strictJSON(out string, v any) error {
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	var doc any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return err
	}
	if p := jsonouttest.Check(doc, true); p != "" {
		return errors.New(p)
	}
	return nil
}
