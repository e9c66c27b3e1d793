package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"cellagent/transport/mqtt"
	"cellagent/transport/mqtt/mqtttest"
	"cellagent/transport/secret/secrettest"
)

// publisher plays the gateways: a paho client publishing retained
// messages in the shapes of SCHEMA.md.
type publisher struct {
	t   *testing.T
	cli paho.Client
}

func newPublisher(t *testing.T, broker string) *publisher {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(broker).SetClientID("test-publisher").SetProtocolVersion(4)
	cli := paho.NewClient(o)
	if tok := cli.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	t.Cleanup(func() { cli.Disconnect(100) })
	return &publisher{t, cli}
}

func (p *publisher) publish(topic string, retained bool, payload string) {
	p.t.Helper()
	tok := p.cli.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		p.t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// seedFleet publishes two gateways: gw-b online with telemetry and an
// event, gw-a offline (its will) with older telemetry.
func seedFleet(p *publisher, now time.Time) {
	ts := now.Add(-90 * time.Second).Unix()
	p.publish("cellagent/v1/gw-b/status", true, fmt.Sprintf(`{"v":1,"state":"online","session":12,"ts":%d,"ka":300,"imei":"866425031234567","iccid":"8988228066601234567","model":"BG96","fw":"BG96MAR02A07M1G","agent":"0.4.0"}`, ts))
	p.publish("cellagent/v1/gw-b/telemetry", true, fmt.Sprintf(`{"v":1,"seq":7,"q":1043,"ts":%d,"reg":{"cs":"searching","eps":"home"},"act":"CAT-M1","op":"26201","band":"LTE BAND 20","rssi":-65,"rsrp":-95,"rsrq":-11,"sinr":7.4,"ps_att":true}`, ts))
	p.publish("cellagent/v1/gw-a/status", true, `{"v":1,"state":"offline","session":3}`)
	p.publish("cellagent/v1/gw-a/telemetry", true, fmt.Sprintf(`{"v":1,"seq":2,"q":40,"ts":%d,"reg":{"eps":"searching"},"rssi":-101,"ps_att":false}`, now.Add(-3*time.Hour).Unix()))
}

func TestFleetList(t *testing.T) {
	broker := mqtttest.Start(t, mqtttest.Options{}).URL()
	seedFleet(newPublisher(t, broker), time.Now())

	o := cli(t, "", "fleet", "list", "--broker", broker, "--allow-plaintext", "--settle", "300ms")
	if o.code != 0 {
		t.Fatalf("code %d stdout %q stderr %q", o.code, o.stdout, o.stderr)
	}
	t.Logf("\n%s", o.stdout)
	lines := strings.Split(strings.TrimSpace(o.stdout), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID ") || !strings.HasPrefix(lines[1], "gw-a ") || !strings.HasPrefix(lines[2], "gw-b ") {
		t.Fatalf("want a header and gw-a, gw-b in order:\n%s", o.stdout)
	}
	for _, want := range []string{"OFFLINE", "searching", "3h ago"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("gw-a row %q lacks %q", lines[1], want)
		}
	}
	for _, want := range []string{"online", "home", "CAT-M1", "26201", "-95/7.4", "1m ago"} {
		if !strings.Contains(lines[2], want) {
			t.Errorf("gw-b row %q lacks %q", lines[2], want)
		}
	}
	if lines[3] != "2 gateways, 1 online, 1 offline" {
		t.Errorf("summary %q", lines[3])
	}

	o = cli(t, "", "fleet", "list", "--broker", broker, "--allow-plaintext", "--settle", "300ms", "--json")
	var list fleetListJSON
	if err := strictJSON(o.stdout, &list); o.code != 0 || err != nil {
		t.Fatalf("code %d err %v stdout %q stderr %q", o.code, err, o.stdout, o.stderr)
	}
	var gws []mqtt.Gateway
	for _, g := range list.Gateways {
		gws = append(gws, g.Gateway)
	}
	if len(gws) != 2 || gws[0].ID != "gw-a" || gws[0].Online || gws[1].ID != "gw-b" || !gws[1].Online ||
		gws[1].RSRP == nil || *gws[1].RSRP != -95 || gws[1].Act != "CAT-M1" || gws[1].Model != "BG96" {
		t.Errorf("snapshot %+v", gws)
	}

	// An empty prefix is not an error, just nothing to show.
	o = cli(t, "", "fleet", "list", "--broker", broker, "--allow-plaintext", "--settle", "100ms", "--prefix", "other/v1")
	if o.code != 0 || !strings.Contains(o.stdout, "no gateways under other/v1/") {
		t.Errorf("empty prefix: code %d stdout %q stderr %q", o.code, o.stdout, o.stderr)
	}
}

func TestFleetWatchJSON(t *testing.T) {
	broker := mqtttest.Start(t, mqtttest.Options{}).URL()
	p := newPublisher(t, broker)
	seedFleet(p, time.Now())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, &env{stdout: &out, stderr: &errb}, []string{"fleet", "watch", "--json",
			"--broker", broker, "--allow-plaintext", "--settle", "200ms"})
	}()
	lines := func() []mqtt.Gateway {
		var gws []mqtt.Gateway
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			if l == "" {
				continue
			}
			var g mqtt.Gateway
			if err := json.Unmarshal([]byte(l), &g); err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			gws = append(gws, g)
		}
		return gws
	}
	waitFor := func(what string, ok func([]mqtt.Gateway) bool) []mqtt.Gateway {
		t.Helper()
		deadline := time.After(15 * time.Second)
		for {
			gws := lines()
			if ok(gws) {
				return gws
			}
			select {
			case code := <-done:
				t.Fatalf("watch ended (%d) before %s: stdout %q stderr %q", code, what, out.String(), errb.String())
			case <-deadline:
				t.Fatalf("no %s: stdout %q stderr %q", what, out.String(), errb.String())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	waitFor("initial snapshot", func(g []mqtt.Gateway) bool { return len(g) >= 2 })
	// Give the follower time to finish its own replay of the retained
	// messages: it must not add (half-known) lines for them.
	time.Sleep(time.Second)
	gws := lines()
	if len(gws) != 2 || gws[0].ID != "gw-a" || gws[0].Online || gws[1].ID != "gw-b" || !gws[1].Online || gws[1].Act != "CAT-M1" {
		t.Fatalf("want gw-a offline and gw-b online, once each: %q", out.String())
	}

	p.publish("cellagent/v1/gw-b/telemetry", true, fmt.Sprintf(`{"v":1,"seq":8,"q":1044,"ts":%d,"reg":{"eps":"home"},"act":"CAT-M1","op":"26201","rsrp":-80,"sinr":12.5,"ps_att":true}`, time.Now().Unix()))
	gws = waitFor("update", func(g []mqtt.Gateway) bool { return len(g) >= 3 })
	u := gws[2]
	if u.ID != "gw-b" || !u.Online || u.RSRP == nil || *u.RSRP != -80 || u.SINR == nil || *u.SINR != 12.5 || u.Model != "BG96" ||
		time.Since(u.LastSeen) > 10*time.Second {
		t.Errorf("update %+v", u)
	}
	p.publish("cellagent/v1/gw-b/event", false, fmt.Sprintf(`{"v":1,"seq":1,"q":1045,"ts":%d,"type":"recovery","level":"warn","msg":"cfun reset"}`, time.Now().Unix()))
	gws = waitFor("event", func(g []mqtt.Gateway) bool { return len(g) >= 4 })
	if gws[3].LastEvent != "recovery: cfun reset" {
		t.Errorf("event update %+v", gws[3])
	}
	// Clearing the retained status decommissions a gateway.
	p.publish("cellagent/v1/gw-a/status", true, "")
	gws = waitFor("removal", func(g []mqtt.Gateway) bool { return len(g) >= 5 })
	if gws[4].ID != "gw-a" || !gws[4].Removed {
		t.Errorf("removal %+v", gws[4])
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("code %d stderr %q", code, errb.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch did not stop on cancel")
	}
}

func TestFleetWatchText(t *testing.T) {
	broker := mqtttest.Start(t, mqtttest.Options{}).URL()
	p := newPublisher(t, broker)
	seedFleet(p, time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, &env{stdout: &out, stderr: &errb}, []string{"fleet", "watch",
			"--broker", broker, "--allow-plaintext", "--settle", "200ms"})
	}()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(out.String(), "1 offline") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(700 * time.Millisecond) // past the follower's replay
	p.publish("cellagent/v1/gw-a/status", true, fmt.Sprintf(`{"v":1,"state":"online","session":4,"ts":%d}`, time.Now().Unix()))
	for !strings.Contains(out.String(), "gw-a  online") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("code %d stderr %q", code, errb.String())
	}
	t.Logf("\n%s", out.String())
	s := out.String()
	if !strings.Contains(s, "gw-a  OFFLINE") || !strings.Contains(s, "gw-b  online") || strings.Count(s, "\n") != 6 {
		t.Errorf("want a title, the table, the summary and one update line:\n%s", s)
	}
	if i := strings.Index(s, "gw-a  online  searching"); i < 0 || !strings.Contains(s[i:], "gw-a  online  searching  -  -  -  -") {
		t.Errorf("update line:\n%s", s)
	}
}

func TestFleetAuth(t *testing.T) {
	broker := mqtttest.Start(t, mqtttest.Options{Users: map[string]string{"fleet": "s3cret"}}).URL()
	dir := t.TempDir()
	good := secrettest.WriteFile(t, dir, "good", "s3cret\n", 0o600)
	bad := secrettest.WriteFile(t, dir, "bad", "wrong\n", 0o600)
	open := secrettest.WriteFile(t, dir, "open", "s3cret\n", 0o644)

	o := cli(t, "", "fleet", "list", "--broker", broker, "--allow-plaintext", "--settle", "100ms", "--username", "fleet", "--password-file", good)
	if o.code != 0 || !strings.Contains(o.stdout, "no gateways") {
		t.Errorf("good password: code %d stdout %q stderr %q", o.code, o.stdout, o.stderr)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--username", "fleet", "--password-file", bad}, 1, `refused the login as "fleet": not authorized (check --username and --password-file)`},
		{nil, 1, "refused an anonymous connection: not authorized (give --username and --password-file)"},
		{[]string{"--username", "fleet", "--password-file", open}, 1, "--password-file: "},
		{[]string{"--password-file", good}, 2, "--password-file needs --username"},
	} {
		for _, sub := range []string{"list", "watch"} {
			args := append([]string{"fleet", sub, "--broker", broker, "--allow-plaintext", "--settle", "100ms"}, c.args...)
			o := cli(t, "", args...)
			if o.code != c.code || !strings.Contains(o.stderr, c.want) {
				t.Errorf("%v: code %d stderr %q, want %d and %q", c.args, o.code, o.stderr, c.code, c.want)
			}
			if strings.Contains(o.stderr, "s3cret") || strings.Contains(o.stderr, "wrong") {
				t.Errorf("%v: the password leaked: %q", c.args, o.stderr)
			}
		}
	}
}

func TestFleetErrors(t *testing.T) {
	closed := fmt.Sprintf("127.0.0.1:%d", mqtttest.FreePort(t))
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"list"}, 2, "--broker is required"},
		{[]string{"list", "--broker", "tcp://" + closed}, 2, "--allow-plaintext"},
		{[]string{"watch", "--broker", "tcp://" + closed}, 2, "--allow-plaintext"},
		{[]string{"list", "--broker", "http://" + closed}, 2, "scheme must be tls, ssl or (explicitly allowed) tcp"},
		{[]string{"list", "--broker", "tls://"}, 2, "has no host"},
		{[]string{"list", "--broker", "tls://user:pw@host"}, 2, "must not carry credentials"},
		{[]string{"list", "--broker", "tls://host", "--prefix", "a/#"}, 2, "prefix"},
		{[]string{"watch", "--broker", "tls://host", "--share", "a/b"}, 2, "--share"},
		{[]string{"list", "--broker", "tls://host", "--ca-file", "/nonexistent/ca.pem"}, 2, "CA file"},
		{[]string{"list", "--broker", "tcp://" + closed, "--allow-plaintext"}, 1, "cannot reach broker tcp://" + closed},
		{[]string{"watch", "--broker", "tcp://" + closed, "--allow-plaintext", "--json"}, 1, "cannot reach broker tcp://" + closed},
		{[]string{"list", "extra", "--broker", "tls://host"}, 2, "unexpected arguments: extra"},
		{[]string{"nosuch"}, 2, `unknown subcommand "nosuch"`},
		{nil, 2, "missing subcommand"},
	} {
		o := cli(t, "", append([]string{"fleet"}, c.args...)...)
		if o.code != c.code || !strings.Contains(o.stderr, c.want) {
			t.Errorf("%v: code %d stderr %q, want %d and %q", c.args, o.code, o.stderr, c.code, c.want)
		}
	}
	for _, sub := range []string{"list", "watch"} {
		o := cli(t, "", "fleet", sub, "--help")
		if o.code != 0 || strings.Count(o.stdout, "Usage: cellagent fleet "+sub) != 1 || !strings.Contains(o.stdout, "--allow-plaintext") {
			t.Errorf("%s --help: code %d stdout %q", sub, o.code, o.stdout)
		}
	}
	if o := cli(t, "", "fleet", "--help"); o.code != 0 || !strings.Contains(o.stdout, "watch") {
		t.Errorf("fleet --help: code %d stdout %q", o.code, o.stdout)
	}
}

func TestAgo(t *testing.T) {
	now := time.Unix(1735689600, 0)
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s ago"}, {-time.Second, "0s ago"}, {12 * time.Second, "12s ago"}, {90 * time.Second, "1m ago"},
		{3 * time.Hour, "3h ago"}, {47 * time.Hour, "47h ago"}, {72 * time.Hour, "3d ago"}, {-5 * time.Minute, "5m ahead"},
	} {
		if got := ago(now, now.Add(-c.d)); got != c.want {
			t.Errorf("ago(%s) = %q, want %q", c.d, got, c.want)
		}
	}
	if got := ago(now, time.Time{}); got != "never" {
		t.Errorf("zero time: %q", got)
	}
}

// On a terminal the table is redrawn from the top; a footer (the demo's
// commands to try) stays below it at every redraw.
func TestFleetWatchFooter(t *testing.T) {
	var out strings.Builder
	w := &fleetWatch{e: &env{stdout: &out}, terminal: true, title: "t", footer: "Try in another terminal:\n  cellagent fleet list\n",
		rows: map[string]mqtt.Gateway{"gw-a": {ID: "gw-a", Online: true}}}
	for range 2 {
		if err := w.draw(); err != nil {
			t.Fatal(err)
		}
	}
	frames := strings.Split(out.String(), "\x1b[H")
	if len(frames) != 3 {
		t.Fatalf("%d frames", len(frames)-1)
	}
	for _, f := range frames[1:] {
		table, foot, ok := strings.Cut(f, "Try in another terminal:")
		if !ok || !strings.Contains(table, "gw-a") || !strings.Contains(foot, "cellagent fleet list") {
			t.Errorf("frame without the table above the footer: %q", f)
		}
	}
}

// fleet send checks a command before it goes out, and says when no
// result comes.
func TestFleetSendErrors(t *testing.T) {
	broker := mqtttest.Start(t, mqtttest.Options{}).URL()
	o := cli(t, "", "fleet", "send", "--broker", broker, "--allow-plaintext", "gw-a", "sms/send", `{"id":"x","to":"abc","text":"hi"}`)
	if o.code != 2 || !strings.Contains(o.stderr, `to "abc"`) {
		t.Errorf("bad payload: code %d stderr %q", o.code, o.stderr)
	}
	o = cli(t, "", "fleet", "send", "--broker", broker, "--allow-plaintext", "--wait", "500ms", "gw-a", "status")
	if o.code != 1 || !strings.Contains(o.stderr, "no result") {
		t.Errorf("no gateway: code %d stderr %q", o.code, o.stderr)
	}
}
