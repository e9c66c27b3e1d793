package config

import (
	"errors"
	"strings"
	"testing"
)

// Type errors, unknown keys and bad values of one file are reported
// together, each with its key, its line and, for a type error, the type
// the key wants; no Go type names leak into the messages.
func TestAllProblemsAtOnce(t *testing.T) {
	in := `[device]
id = "gw/1#"

[modem]
port = 1
baud = "x"
parity = "none"

[sms]
per_minute = -1
smsc = 5

[mqtt]
keepalive = 30
commands = "yes"
allow_to = ["+4917", 3]
embedded_listen = "0.0.0.0:23103"

[telemetry]
poll = "-1s"
rssi_db = "3"

[bogus]
x = 1
`
	_, err := Parse([]byte(in), "gw.toml")
	var ps *Problems
	if !errors.As(err, &ps) {
		t.Fatalf("err = %v", err)
	}
	want := []string{
		`line 2: device.id: "gw/1#"`,
		"line 5: modem.port: want a string, got an integer (1)",
		`line 6: modem.baud: want an integer, got a string ("x")`,
		"line 7: modem.parity: unknown key",
		"line 10: sms.per_minute: must not be negative",
		"line 11: sms.smsc: want a string, got an integer (5)",
		`line 14: mqtt.keepalive: want a duration such as "15s", got an integer (30)`,
		`line 15: mqtt.commands: want true or false, got a string ("yes")`,
		"line 16: mqtt.allow_to: want an array of strings, got an array holding an integer (3)",
		`line 17: mqtt.embedded_listen: embedded broker: address "0.0.0.0:23103" is not loopback`,
		"line 20: telemetry.poll: -1s: want at least 1s",
		`line 21: telemetry.rssi_db: want a number, got a string ("3")`,
		"line 23: bogus: unknown key",
	}
	got := err.Error()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q", w)
		}
	}
	if len(ps.List) != len(want) {
		t.Errorf("%d problems, want %d", len(ps.List), len(want))
	}
	if strings.Contains(got, "config.") || strings.Contains(got, "struct") {
		t.Errorf("Go internals in the messages")
	}
	if t.Failed() {
		t.Logf("got:\n%s", got)
	}
}

// Commands on the embedded broker need a user it can require: without
// one any local process could send SMS.
func TestEmbeddedBrokerCommandsNeedAUser(t *testing.T) {
	_, err := Parse([]byte("[mqtt]\ncommands = true\n"), "gw.toml")
	if err == nil || !strings.Contains(err.Error(), "line 2: mqtt.commands: on the embedded broker") {
		t.Errorf("commands on an open embedded broker: %v", err)
	}
	if _, err := Parse([]byte("[mqtt]\ncommands = true\nusername = \"gw\"\npassword_file = \"/etc/cellagent/mqtt.password\"\n"), "gw.toml"); err != nil {
		t.Errorf("commands on an embedded broker with a user: %v", err)
	}
	if _, err := Parse([]byte("[mqtt]\ncommands = true\nbroker = \"tls://broker.example.com:8883\"\n"), "gw.toml"); err != nil {
		t.Errorf("commands on an external broker: %v", err)
	}
}
