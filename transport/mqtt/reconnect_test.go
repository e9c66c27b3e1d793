package mqtt

import (
	"testing"
	"time"

	"cellagent/transport/mqtt/mqtttest"
)

// Reconnect drops a live session and cuts an hour's back-off short,
// whether the session was up or the client was waiting to retry.
func TestReconnectSkipsBackoff(t *testing.T) {
	t.Parallel()
	b := mqtttest.Start(t, mqtttest.Options{})
	r := newRig(t, b, func(o *Options) { o.MinBackoff, o.MaxBackoff = time.Hour, time.Hour })
	session := func(n uint64) {
		waitFor(t, 10*time.Second, "session", func() bool { return r.c.Stats().Session == n })
	}
	session(1)
	if !r.c.Reconnect() {
		t.Error("Reconnect with a session up said it was down")
	}
	session(2)

	b.Stop()
	waitFor(t, 10*time.Second, "offline", func() bool { return !r.c.Stats().Connected })
	b.Start()
	if r.c.Reconnect() {
		t.Error("Reconnect while offline said a session was up")
	}
	session(3)
}
