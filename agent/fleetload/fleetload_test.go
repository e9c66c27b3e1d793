package fleetload

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"cellagent/transport/mqtt/mqtttest"
)

// Three gateways for a few seconds against a real mosquitto, with every
// kind of event several times: each is seen online with telemetry, every
// change and SMS reaches the reader, and nothing is lost or left behind.
func TestFleetOfThree(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	log := &mqtttest.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", log)
		}
	})
	res, err := Run(context.Background(), Options{
		Count: 3, Broker: b.URL(), AllowPlaintext: true, Seed: 7,
		Warmup: -1, Duration: 4 * time.Second,
		Poll: time.Second, Heartbeat: 2 * time.Second,
		SignalEvery: 700 * time.Millisecond, OutageEvery: 3 * time.Second, SMSEvery: 1500 * time.Millisecond,
		Dir:    t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Online != 3 {
		t.Errorf("%d of 3 gateways seen online with telemetry", res.Online)
	}
	if res.Telemetry == 0 || res.Published < res.Telemetry || res.Delivered == 0 {
		t.Errorf("published %d (telemetry %d), delivered %d", res.Published, res.Telemetry, res.Delivered)
	}
	if res.SignalChanges == 0 || res.PubToReader.N == 0 || res.ReadToReader.N == 0 {
		t.Errorf("%d signal changes, %d publish and %d reading latencies", res.SignalChanges, res.PubToReader.N, res.ReadToReader.N)
	}
	if res.PollWait <= 0 || res.PollWait > time.Second {
		t.Errorf("mean poll wait %s, want within the 1 s poll", res.PollWait)
	}
	if res.SMSSent == 0 || res.SMSSeen != res.SMSSent {
		t.Errorf("%d SMS delivered to the modems, %d seen by the reader", res.SMSSent, res.SMSSeen)
	}
	if res.Outages == 0 {
		t.Error("no outage in the run")
	}
	if res.Gaps != 0 || res.BacklogEnd != 0 || !res.KeepsUp() {
		t.Errorf("gaps %d, backlog left %d, keeps up %v", res.Gaps, res.BacklogEnd, res.KeepsUp())
	}
	if res.Process.CPU <= 0 || res.Process.RSSMax == 0 || res.Threads == 0 || res.FDs == 0 {
		t.Errorf("process usage not measured: %+v, %d threads, %d files", res.Process, res.Threads, res.FDs)
	}
}

func TestOptionsRefused(t *testing.T) {
	for _, o := range []Options{
		{Count: 0, Broker: "tcp://127.0.0.1:1883", AllowPlaintext: true},
		{Count: 1, Broker: "tls://127.0.0.1:8883"},
		{Count: 1, Broker: "tcp://127.0.0.1:1883"},
		{Count: 1, Broker: "tcp://127.0.0.1:1883", AllowPlaintext: true, Poll: time.Millisecond},
	} {
		if _, err := Run(context.Background(), o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

func TestSMSFrom(t *testing.T) {
	for ev, want := range map[string]string{
		"sms in: from +4917000000012, 1 part(s)": "+4917000000012",
		"modem: modem session up":                "",
		"sms in: from +49":                       "",
	} {
		if got, ok := smsFrom(ev); got != want || ok != (want != "") {
			t.Errorf("smsFrom(%q) = %q, %v", ev, got, ok)
		}
	}
}
