package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestExampleIsValidAndDefault(t *testing.T) {
	cfg, err := Parse([]byte(Example), "example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg != Default() {
		t.Errorf("example differs from the defaults:\n%+v\n%+v", cfg, Default())
	}
}

func TestEmptyFileIsDefault(t *testing.T) {
	cfg, err := Parse(nil, "empty")
	if err != nil || cfg != Default() {
		t.Fatalf("cfg %+v err %v", cfg, err)
	}
}

func TestProblemsNameKeyAndLine(t *testing.T) {
	in := `[modem]
port = "/dev/ttyUSB3"
speed = 9600

[bsc]
base_url = "http://bsc.example.com"
timeout = "15s"

[log]
level = "chatty"
colour = true
`
	_, err := Parse([]byte(in), "gw.toml")
	var ps *Problems
	if !errors.As(err, &ps) {
		t.Fatalf("err = %v", err)
	}
	want := []string{
		"line 3: modem.speed: unknown key",
		"line 11: log.colour: unknown key",
	}
	got := err.Error()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in:\n%s", w, got)
		}
	}
	// Unknown keys are reported together with value problems of the same
	// file, so one round of fixes is enough.
	for _, w := range []string{"line 6: bsc.base_url: plain http", "bsc.username: must be set", "line 10: log.level: \"chatty\""} {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in:\n%s", w, got)
		}
	}
}

func TestTypeError(t *testing.T) {
	_, err := Parse([]byte("[modem]\nbaud = \"fast\"\n"), "gw.toml")
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "modem.baud") {
		t.Fatalf("err = %v", err)
	}
	_, err = Parse([]byte("[bsc]\ntimeout = \"soon\"\n"), "gw.toml")
	if err == nil || !strings.Contains(err.Error(), "not a duration") {
		t.Fatalf("err = %v", err)
	}
	_, err = Parse([]byte("[modem\n"), "gw.toml")
	if err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("syntax: err = %v", err)
	}
}

func TestLoopbackHTTPAllowed(t *testing.T) {
	in := "[bsc]\nbase_url = \"http://127.0.0.1:8443\"\nusername = \"admin\"\npassword_file = \"/etc/cellagent/bsc.password\"\ntimeout = \"3s\"\n"
	cfg, err := Parse([]byte(in), "gw.toml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BSC.Timeout.Duration != 3*time.Second {
		t.Errorf("timeout %v", cfg.BSC.Timeout)
	}
}

// FuzzParse checks that no file crashes the loader and that every rejected
// file gets at least one problem to show.
func FuzzParse(f *testing.F) {
	f.Add([]byte(Example))
	f.Add([]byte("[modem]\nbaud = 1\n[log]\nlevel = 3\n"))
	f.Add([]byte("a.b.c = 1\n[[x]]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := Parse(data, "fuzz")
		var ps *Problems
		if err != nil && (!errors.As(err, &ps) || len(ps.List) == 0) {
			t.Fatalf("error without problems: %v", err)
		}
	})
}

func TestSMSLimitsRequired(t *testing.T) {
	_, err := Parse([]byte("[sms]\nper_minute = 0\nper_hour = 0\nper_day = 0\n"), "gw.toml")
	if err == nil || !strings.Contains(err.Error(), "SMS cost money") {
		t.Errorf("no global limit: %v", err)
	}
	_, err = Parse([]byte("[sms]\nper_day = 0\nper_destination_per_day = 5\n"), "gw.toml")
	if err == nil || !strings.Contains(err.Error(), "line 2: sms.per_day: must be set when per_destination_per_day is") {
		t.Errorf("per-destination without a daily limit: %v", err)
	}
}
