package bootclock

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestStep(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(boot string, wall, up time.Duration) Mark {
		return Read(t0.Add(wall), func() (string, time.Duration) { return boot, up })
	}
	saved := at("b1", 0, time.Hour)
	for _, c := range []struct {
		name string
		now  Mark
		want time.Duration
		err  string
	}{
		{"no step", at("b1", 10*time.Minute, time.Hour+10*time.Minute), 0, ""},
		{"forward a day", at("b1", 24*time.Hour+10*time.Minute, time.Hour+10*time.Minute), 24 * time.Hour, ""},
		{"back to 1970", Read(time.UnixMilli(1000), func() (string, time.Duration) { return "b1", 2 * time.Hour }), time.UnixMilli(1000).Sub(t0) - time.Hour, ""},
		{"another boot", at("b2", 10*time.Minute, time.Minute), 0, "not the same boot"},
		{"unknown now", at("", 10*time.Minute, time.Minute), 0, "not the same boot"},
		{"boot clock went back", at("b1", 10*time.Minute, time.Minute), 0, "boot clock at 3600000 ms then 60000 ms"},
	} {
		got, err := saved.Step(c.now)
		if got != c.want || (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %s, %v; want %s, %q", c.name, got, err, c.want, c.err)
		}
	}
	if _, err := (Mark{}).Step(saved); !errors.Is(err, ErrOtherBoot) {
		t.Errorf("unknown mark: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		m   Mark
		err string
	}{
		{Mark{}, ""},
		{Mark{Boot: "b", Wall: 1, Up: 0}, ""},
		{Mark{Boot: "b"}, "all or none"},
		{Mark{Wall: 5}, "all or none"},
		{Mark{Up: 5}, "all or none"},
		{Mark{Boot: "b", Wall: 5, Up: -1}, "up -1"},
		{Mark{Boot: "b", Wall: 5, Up: 1 << 62}, "outside"},
	} {
		err := c.m.Validate()
		if (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("%+v: %v, want %q", c.m, err, c.err)
		}
	}
}

func TestSystem(t *testing.T) {
	id, up := System()
	if id == "" || up <= 0 {
		t.Fatalf("System() = %q, %s", id, up)
	}
	id2, up2 := System()
	if id2 != id || up2 < up {
		t.Errorf("then %q %s, now %q %s", id, up, id2, up2)
	}
}
