package embedded

import (
	"context"
	"log/slog"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// With a user, the broker admits only that user: being a local process
// is not enough to publish commands that send SMS.
func TestWithUserAdmitsOnlyThatUser(t *testing.T) {
	log, _ := testLogger(t, slog.LevelDebug)
	b, err := Start(context.Background(), "127.0.0.1:0", log, WithUser("gw", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	connect := func(user, password string) error {
		opts := paho.NewClientOptions().AddBroker(b.URL()).SetClientID("c-" + user + password).
			SetConnectRetry(false).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
		if user != "" {
			opts.SetUsername(user).SetPassword(password)
		}
		c := paho.NewClient(opts)
		tok := c.Connect()
		if !tok.WaitTimeout(10 * time.Second) {
			t.Fatal("connect timed out")
		}
		if tok.Error() == nil {
			c.Disconnect(100)
		}
		return tok.Error()
	}
	for _, c := range []struct{ user, password string }{{"", ""}, {"gw", "wrong"}, {"other", "s3cret"}, {"gw", ""}} {
		if err := connect(c.user, c.password); err == nil {
			t.Errorf("user %q password %q admitted", c.user, c.password)
		}
	}
	if err := connect("gw", "s3cret"); err != nil {
		t.Errorf("the configured user refused: %v", err)
	}
}
