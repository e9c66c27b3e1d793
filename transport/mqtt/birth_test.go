package mqtt

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cellagent/transport/mqtt/mqtttest"
)

// holdSubscribe delays each SUBSCRIBE the client writes until release is
// closed or hold has passed: a broker slow to take the subscription,
// which makes any window between the birth and the SUBACK certain to
// show. Paho writes each packet in one Write, so a packet starts at the
// start of a Write.
type holdSubscribe struct {
	net.Conn
	release <-chan struct{}
	hold    time.Duration
	held    *atomic.Int32
}

func (c *holdSubscribe) Write(b []byte) (int, error) {
	if len(b) > 0 && b[0] == 0x82 { // SUBSCRIBE fixed header, MQTT 3.1.1 §3.8.1
		c.held.Add(1)
		t := time.NewTimer(c.hold)
		select {
		case <-c.release:
		case <-t.C:
		}
		t.Stop()
	}
	return c.Conn.Write(b)
}

// A fleet tool may send a command the instant it sees a gateway's
// "online" birth, and the command must arrive: the device is subscribed
// before it announces itself. Each gateway's SUBSCRIBE is held until the
// tool's command has been accepted by the broker (or, when the birth
// never comes before the SUBACK, for a fixed time), so a device that
// announced itself first would lose every command, not just some under
// load.
func TestCommandSentOnBirthReceived(t *testing.T) {
	t.Parallel()
	const gateways = 10
	b := mqtttest.Start(t, mqtttest.Options{})
	w := watch(t, b, watchOpts{id: "ops", clean: true}, "test/v1/+/status")

	got := make(chan string, gateways)
	release := map[string]chan struct{}{}
	var held atomic.Int32
	for i := range gateways {
		id := fmt.Sprintf("gw%d", i)
		rel := make(chan struct{})
		release[id] = rel
		newRig(t, b, func(o *Options) {
			o.DeviceID = id
			o.Conn.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
				conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return &holdSubscribe{Conn: conn, release: rel, hold: 300 * time.Millisecond, held: &held}, nil
			}
			o.Commands = Commands{Enabled: true, Handlers: Handlers{Status: func(context.Context) error {
				got <- id
				return nil
			}}}
		})
	}

	isBirth := func(m msg) bool { return !m.retained && strings.Contains(m.payload, `"state":"online"`) }
	for range gateways {
		m := w.next(t, 10*time.Second, isBirth)
		p, ok := ParseTopic("test/v1", m.topic)
		if !ok || release[p.Device] == nil {
			t.Fatalf("birth on unexpected topic %s", m.topic)
		}
		tok := w.cli.Publish("test/v1/"+p.Device+"/cmd/status", 1, false, `{"id":"on-birth"}`)
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
		close(release[p.Device])
	}

	received := map[string]bool{}
	timeout := time.After(5 * time.Second)
	for len(received) < gateways {
		select {
		case id := <-got:
			received[id] = true
		case <-timeout:
			var lost []string
			for id := range release {
				if !received[id] {
					lost = append(lost, id)
				}
			}
			slices.Sort(lost)
			t.Fatalf("%d of %d commands sent on the birth were lost: %v", len(lost), gateways, lost)
		}
	}
	if n := held.Load(); n != gateways {
		t.Fatalf("%d SUBSCRIBEs held, want one per gateway (%d)", n, gateways)
	}
}
