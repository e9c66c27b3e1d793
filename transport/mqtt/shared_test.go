package mqtt

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"cellagent/transport/mqtt/mqtttest"
)

// Two fleet consumers in one share group split the traffic of several
// gateways: every telemetry message and every event reaches exactly one
// of them, and each gets a share. This is how a backend scales out
// behind a clustered broker (README, "Scaling past one broker").
func TestSharedSubscriptionSplitsGateways(t *testing.T) {
	t.Parallel()
	b := mqtttest.Start(t, mqtttest.Options{})

	// What each consumer saw, per message: a telemetry reading carries
	// an RSRP no other message of its gateway has, an event a text.
	type seen struct {
		mu   sync.Mutex
		got  map[string]int // message → times seen
		last map[string]Gateway
	}
	var consumers [2]*seen
	for i := range consumers {
		s := &seen{got: map[string]int{}, last: map[string]Gateway{}}
		consumers[i] = s
		runFleet(t, b, func(o *FleetOptions) {
			o.ShareGroup = "backend"
			o.OnUpdate = func(g Gateway) {
				s.mu.Lock()
				defer s.mu.Unlock()
				prev := s.last[g.ID]
				s.last[g.ID] = g
				// The update changed what the message carries: a status
				// (the births) changes neither.
				switch {
				case g.LastEvent != prev.LastEvent:
					s.got[g.ID+" event "+g.LastEvent]++
				case g.RSRP != nil && (prev.RSRP == nil || *g.RSRP != *prev.RSRP):
					s.got[fmt.Sprintf("%s telemetry %d", g.ID, *g.RSRP)]++
				}
			}
		})
	}

	const gateways, readings, events = 4, 12, 6
	want := map[string]bool{}
	var rigs []*rig
	for d := range gateways {
		id := fmt.Sprintf("gw%d", d)
		rigs = append(rigs, newRig(t, b, func(o *Options) { o.DeviceID = id; o.TelemetryQoS = 1 }))
		for i := range readings {
			want[fmt.Sprintf("%s telemetry %d", id, -80-i)] = true
		}
		for i := range events {
			want[fmt.Sprintf("%s event recovery: step %d", id, i)] = true
		}
	}
	waitFor(t, 5*time.Second, "gateways online", func() bool {
		for _, r := range rigs {
			if !r.c.Stats().Connected {
				return false
			}
		}
		return true
	})
	for d, r := range rigs {
		for i := range max(readings, events) {
			if i < readings {
				if err := r.c.QueueTelemetry(Telemetry{RSRP: ptr(-80 - i)}); err != nil {
					t.Fatalf("gw%d: %v", d, err)
				}
			}
			if i < events {
				if err := r.c.QueueEvent(Event{Type: "recovery", Msg: fmt.Sprintf("step %d", i)}); err != nil {
					t.Fatalf("gw%d: %v", d, err)
				}
			}
		}
	}

	total := func() int {
		n := 0
		for _, s := range consumers {
			s.mu.Lock()
			for _, c := range s.got {
				n += c
			}
			s.mu.Unlock()
		}
		return n
	}
	waitFor(t, 10*time.Second, "every message consumed", func() bool { return total() >= len(want) })
	time.Sleep(300 * time.Millisecond) // room for a duplicate to show up

	times := map[string]int{}
	for i, s := range consumers {
		s.mu.Lock()
		if len(s.got) == 0 {
			t.Errorf("consumer %d got nothing", i)
		}
		for m, c := range s.got {
			times[m] += c
		}
		t.Logf("consumer %d: %d messages", i, len(s.got))
		s.mu.Unlock()
	}
	for m := range want {
		if times[m] != 1 {
			t.Errorf("%q reached the group %d times, want once", m, times[m])
		}
	}
	for m := range times {
		if !want[m] {
			t.Errorf("unexpected message %q", m)
		}
	}
}
