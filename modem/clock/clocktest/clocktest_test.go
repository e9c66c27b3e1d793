package clocktest

import (
	"strings"
	"testing"
	"time"

	"cellagent/modem/clock"
)

var _ clock.Clock = (*Fake)(nil)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func TestFake(t *testing.T) {
	c := New(t0, 0)
	var got []string
	c.AfterFunc(2*time.Minute, func() { got = append(got, "b@"+c.Now().Sub(t0).String()) })
	c.AfterFunc(time.Minute, func() {
		got = append(got, "a@"+c.Now().Sub(t0).String())
		c.AfterFunc(0, func() { got = append(got, "a2@"+c.Now().Sub(t0).String()) })
	})
	c.AfterFunc(2*time.Minute, func() { got = append(got, "c@"+c.Now().Sub(t0).String()) })
	// A wait ends early at a hook, as the hook's effect would wake it.
	if at := <-c.After(90 * time.Second); !at.Equal(t0.Add(time.Minute)) || strings.Join(got, " ") != "a@1m0s a2@1m0s" {
		t.Errorf("after 90s: woken at %s, hooks %v", at.Sub(t0), got)
	}
	if at := <-c.After(30 * time.Second); !at.Equal(t0.Add(90 * time.Second)) {
		t.Errorf("woken at %s", at.Sub(t0))
	}
	c.Advance(time.Hour)
	if strings.Join(got, " ") != "a@1m0s a2@1m0s b@2m0s c@2m0s" || !c.Now().Equal(t0.Add(time.Hour+90*time.Second)) {
		t.Errorf("hooks %v, now %s", got, c.Now().Sub(t0))
	}
	paced := New(t0, 20*time.Millisecond)
	start := time.Now()
	<-paced.After(time.Hour)
	if real := time.Since(start); real < 20*time.Millisecond || !paced.Now().Equal(t0.Add(time.Hour)) {
		t.Errorf("paced: an hour in %s, clock at %s", real, paced.Now().Sub(t0))
	}
}
