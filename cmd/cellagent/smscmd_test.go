package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"cellagent/transport/bsc"
	"cellagent/transport/bsc/bscemu"
	"cellagent/transport/bsc/receiver"
	"cellagent/transport/mqtt/mqtttest"
	"cellagent/transport/secret/secrettest"
	"cellagent/transport/smscmd"
)

// The fleet's sender number, the only one the device takes commands from.
const fleetSender = "+4915112345678"

// smsRig is the whole loop as separate processes: the platform simulator
// with a simulated BG96 (`cellbench platform --modem-symlink`), the agent on that
// modem (`run`), and the application endpoint (`bsc receive --json`).
type smsRig struct {
	bin, dir, api, fleetCfg, keyFile string
	key                              []byte
	broker                           *mqtttest.Broker
	agent, recv                      *agentProc
	client                           *bsc.Client
}

func startSMSRig(t *testing.T) *smsRig {
	bin := testBinary(t)
	r := &smsRig{bin: bin, dir: t.TempDir()}
	dir := r.dir
	r.broker = mqtttest.Start(t, mqtttest.Options{})
	r.broker.Stop() // the data path is down
	pw := secrettest.WriteFile(t, dir, "pw", testPW+"\n", 0o600)
	fwd := secrettest.WriteFile(t, dir, "fwd", "fwd-"+randHex(t, 16)+"\n", 0o600)
	keyHex := randHex(t, 32)
	r.keyFile = secrettest.WriteFile(t, dir, "device.key", keyHex+"\n", 0o600)
	var err error
	if r.key, err = smscmd.ParseKey(keyHex); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "keys")
	if err := os.Mkdir(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	secrettest.WriteFile(t, keys, testICCID+".key", keyHex+"\n", 0o600)
	r.api = fmt.Sprintf("127.0.0.1:%d", mqtttest.FreePort(t))
	recv := fmt.Sprintf("127.0.0.1:%d", mqtttest.FreePort(t))
	link := filepath.Join(dir, "ttyBG96")

	platform := startAgentProc(t, benchBinary(t), "platform", "--listen", r.api, "--user", "admin:"+pw, "--modem-symlink", link,
		"--app-url", "http://"+recv+"/", "--app-secret-file", fwd)
	waitBuffer(t, platform, &platform.stdout, "Ctrl-C to stop")
	r.recv = startAgentProc(t, bin, "bsc", "receive", "--listen", recv, "--secret-file", fwd, "--key-dir", keys,
		"--store", filepath.Join(dir, "receive.db"), "--json")
	r.recv.waitStderr(t, "receiving forwards at")
	cfg := agentConfig(t, dir, "cellagent.toml", map[string][]string{
		"device":       {`id = "gw1"`},
		"modem":        {"port = " + q(link)},
		"sms":          {"per_minute = 10"},
		"sms_commands": {"enabled = true", "key_file = " + q(r.keyFile), "allow_from = [" + q(fleetSender) + "]"},
		"bsc":          {"base_url = " + q("http://"+r.api), `username = "admin"`, "password_file = " + q(pw), "iccid = " + q(testICCID)},
		"mqtt":         {"broker = " + q(r.broker.URL()), "allow_plaintext = true"},
		"state":        {"dir = " + q(filepath.Join(dir, "state"))},
		// A bearer another program owns, on an interface that is up, so
		// the status reply has a bearer to tell.
		"data": {`mode = "external"`, `interface = "lo"`},
	})
	r.agent = startAgentProc(t, bin, "run", "--config", cfg)
	r.agent.waitStderr(t, "supervisor: link healthy")
	r.fleetCfg = bscConfig(t, "http://"+r.api, testPW)
	if r.client, err = bsc.New(bsc.Config{BaseURL: "http://" + r.api, Username: "admin", Password: testPW}); err != nil {
		t.Fatal(err)
	}
	return r
}

func waitBuffer(t *testing.T, p *agentProc, b *lockedBuffer, want string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(b.String(), want); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never printed %q; stdout %q stderr %q", want, p.stdout.String(), p.stderr.String())
		}
	}
}

// command runs `cellagent bsc sms send --command` as its own process and
// returns the counter it used.
func (r *smsRig) command(t *testing.T, command string) uint64 {
	t.Helper()
	out, err := exec.Command(r.bin, "bsc", "sms", "send", "--config", r.fleetCfg, "--iccid", testICCID,
		"--from", fleetSender, "--command", command, "--key-file", r.keyFile, "--json").Output()
	if err != nil {
		t.Fatalf("bsc sms send --command %q: %v", command, err)
	}
	var v struct {
		V       int    `json:"v"`
		Counter uint64 `json:"counter"`
	}
	if err := json.Unmarshal(out, &v); err != nil || v.V != 1 || v.Counter == 0 {
		t.Fatalf("bsc sms send printed %q (%v)", out, err)
	}
	return v.Counter
}

// records is what the receiver printed so far.
func (r *smsRig) records(t *testing.T) []receiver.Record {
	t.Helper()
	var recs []receiver.Record
	sc := bufio.NewScanner(strings.NewReader(r.recv.stdout.String()))
	for sc.Scan() {
		var rec receiver.Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("receiver printed %q: %v", sc.Text(), err)
		}
		recs = append(recs, rec)
	}
	return recs
}

func (r *smsRig) replies(t *testing.T) []receiver.Record {
	var out []receiver.Record
	for _, rec := range r.records(t) {
		if rec.Kind == receiver.KindReply {
			out = append(out, rec)
		}
	}
	return out
}

// reply waits for the verified reply to the command with counter.
func (r *smsRig) reply(t *testing.T, counter uint64) *receiver.Reply {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, rec := range r.replies(t) {
			if rec.ReplyError != "" {
				t.Fatalf("unverified reply: %+v", rec)
			}
			if rec.Reply.Counter == counter {
				return rec.Reply
			}
		}
	}
	t.Fatalf("no reply to counter %d; receiver printed:\n%s\nagent:\n%s", counter, r.recv.stdout.String(), r.agent.stderr.String())
	return nil
}

func (r *smsRig) mt(t *testing.T, from, text string) {
	t.Helper()
	if _, err := r.client.SendSMS(context.Background(), testICCID, bsc.MTSMS{Payload: text, SourceAddress: from}); err != nil {
		t.Fatal(err)
	}
}

// A gateway whose broker is unreachable is asked for its status and told
// to reattach by SMS through the platform's API; the signed replies come
// back through the platform's forwarder to `bsc receive`, verified, and
// the reattach shows in the agent's events once the broker is back.
// Then the abuse: a replay, a wrong key, an unknown originator, a
// truncated and an oversized command and a flood of 100 forgeries run
// nothing, cost no SMS and raise one event, while a real SMS still goes
// to sms/in.
func TestSMSCommandsEndToEnd(t *testing.T) {
	r := startSMSRig(t)

	start := time.Now()
	c := r.command(t, "status")
	rep := r.reply(t, c)
	t.Logf("bench: status by SMS, send to verified reply: %v", time.Since(start).Round(time.Millisecond))
	fields := strings.Join(rep.Fields, " ")
	if rep.Command != "status" || !rep.OK || !strings.Contains(fields, "reg=home") || !strings.Contains(fields, "mqtt=down") ||
		!strings.Contains(fields, "ladder=healthy") || !strings.Contains(fields, "att=1 br=up/lo age=") {
		t.Errorf("status reply %+v", rep)
	}

	start = time.Now()
	c = r.command(t, "recover reattach")
	rep = r.reply(t, c)
	t.Logf("bench: recover reattach by SMS, send to verified reply: %v", time.Since(start).Round(time.Millisecond))
	if rep.Command != "recover" || !rep.OK || strings.Join(rep.Fields, " ") != "queued" {
		t.Errorf("recover reply %+v", rep)
	}
	r.agent.waitStderr(t, "supervisor: taking a recovery step")

	r.broker.Start()
	tap := tapBroker(t, r.broker.URL(), "", "", "", "cellagent/v1/gw1/#")
	tap.wait(t, "gw1/event", `"type":"recovery"`, "reattach")
	tap.wait(t, "gw1/event", `"type":"sms_command"`, `"result":"ok queued"`)
	tap.wait(t, "gw1/status", `"state":"online"`)
	tap.forget()
	c = r.command(t, "mqtt-reconnect")
	if rep = r.reply(t, c); !rep.OK || strings.Join(rep.Fields, " ") != "was=up" {
		t.Errorf("mqtt-reconnect reply %+v", rep)
	}
	tap.wait(t, "gw1/status", `"state":"online"`)

	// Abuse, with the broker back so that sms/in and events are seen.
	sign := func(key []byte, verb string, args ...string) string {
		text, err := smscmd.Sign(key, testICCID, smscmd.Message{Kind: smscmd.Command, Counter: uint64(time.Now().UnixMicro()), Verb: verb, Args: args})
		if err != nil {
			t.Fatal(err)
		}
		return text
	}
	ping := sign(r.key, "ping")
	r.mt(t, fleetSender, ping)
	r.agent.waitStderr(t, "SMS command reply queued\" verb=ping")
	accepted := strings.Count(r.agent.stderr.String(), "outbox: SMS accepted")
	wrong := []byte(strings.Repeat("w", 32))
	abuse := []struct{ from, text string }{
		{fleetSender, sign(wrong, "recover", "reboot")},
		{"+4917000000000", sign(r.key, "recover", "cfun-reset")},
		{fleetSender, sign(r.key, "recover", "reboot")[:40]},
		{fleetSender, sign(r.key, "status") + " " + strings.Repeat("x", 200)},
	}
	for i := range 100 {
		abuse = append(abuse, struct{ from, text string }{fleetSender, sign(wrong, "recover", fmt.Sprintf("power-cycle-%d", i))})
	}
	// The replay goes last, long after the original: the inbox takes
	// the same text from the same sender within a second (the service
	// centre's time stamp) for the same message.
	abuse = append(abuse, struct{ from, text string }{fleetSender, ping})
	for _, a := range abuse {
		r.mt(t, a.from, a.text)
	}
	r.mt(t, fleetSender, "hello after the flood")
	tap.wait(t, "gw1/sms/in", "hello after the flood")
	for deadline := time.Now().Add(60 * time.Second); strings.Count(r.agent.stderr.String(), "SMS command refused") < len(abuse); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d refusals logged, want %d", strings.Count(r.agent.stderr.String(), "SMS command refused"), len(abuse))
		}
	}
	final := sign(r.key, "ping")
	r.mt(t, fleetSender, final)
	r.agent.waitStderr(t, "SMS command reply queued\" verb=ping id=smscmd-"+strings.Fields(final)[1][1:])

	log := r.agent.stderr.String()
	if n := strings.Count(log, "outbox: SMS accepted"); n != accepted+1 {
		t.Errorf("%d SMS accepted after the abuse, want %d (the final ping's reply only)", n, accepted+1)
	}
	for _, reason := range []string{"replayed or out of order", "signature does not verify", "originator not allowed", "malformed"} {
		if !strings.Contains(log, reason) {
			t.Errorf("no refusal for %q", reason)
		}
	}
	if strings.Contains(log, "taking a recovery step\" step=reboot") || strings.Contains(log, "step=power-cycle") || strings.Contains(log, "step=cfun-reset") {
		t.Errorf("a refused command ran a step:\n%s", log)
	}
	tap.quiet(t, time.Second, "never") // let the event queue drain
	all := tap.all()
	if n := strings.Count(all, "SMS command refused"); n != 1 {
		t.Errorf("%d refusal events on MQTT, want 1 (rate-limited)", n)
	}
	if strings.Contains(all, "#CA1") || strings.Contains(all, "power-cycle-") {
		t.Errorf("command text reached MQTT:\n%s", all)
	}
	if n := len(r.replies(t)); n != 4 && n != 5 {
		// status, recover, mqtt-reconnect, the first ping; the final one
		// may be in flight.
		t.Errorf("%d replies at the receiver, want 4 or 5", n)
	}
}

// The receiver is killed with SIGKILL three times while the platform
// forwards 40 messages (ten of them in two parts) and delivery reports:
// the platform re-transmits what got no 2xx, and in the end every
// message is in the store exactly once and was shown at least once.
func TestBSCReceiveSurvivesKill(t *testing.T) {
	bin := testBinary(t)
	dir := t.TempDir()
	secret := "fwd-" + randHex(t, 16)
	fwd := secrettest.WriteFile(t, dir, "fwd", secret+"\n", 0o600)
	addr := fmt.Sprintf("127.0.0.1:%d", mqtttest.FreePort(t))
	storePath := filepath.Join(dir, "receive.db")
	srv, err := bscemu.New(bscemu.Config{
		Users: map[string]string{"admin": testPW}, SIMs: []bscemu.SIMConfig{{ICCID: testICCID, MSISDN: "882285100012345"}},
		AppURL: "http://" + addr + "/", AppHeader: http.Header{"X-Cellagent-Token": {secret}},
		RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	start := func() *agentProc {
		p := startAgentProc(t, bin, "bsc", "receive", "--listen", addr, "--secret-file", fwd, "--store", storePath, "--json")
		p.waitStderr(t, "receiving forwards at")
		return p
	}
	var shown strings.Builder
	p := start()
	const n = 40
	for i := range n {
		if i%4 == 0 && i > 0 && i <= 12 {
			_ = p.stop(t, syscall.SIGKILL)
			shown.WriteString(p.stdout.String())
			p = start()
		}
		mo := bscemu.MO{Dest: "5432145", Text: fmt.Sprintf("message %d", i), DCS: bscemu.DCSGSM7}
		if i%4 == 1 {
			mo.Total, mo.Identifier = 2, i
			for part, text := range []string{fmt.Sprintf("message %d, first half", i), " and second"} {
				mo.PartNo, mo.Text = part+1, text
				if err := srv.ForwardMO(testICCID, mo); err != nil {
					t.Fatal(err)
				}
			}
			continue
		}
		if err := srv.ForwardMO(testICCID, mo); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); strings.Count(p.stdout.String(), `"kind":"sms"`)+strings.Count(shown.String(), `"kind":"sms"`) < n; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("shown:\n%s%s", shown.String(), p.stdout.String())
		}
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	shown.WriteString(p.stdout.String())
	st, err := receiver.Open(storePath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if c, err := st.Count(); err != nil || c != n {
		t.Fatalf("%d records stored (%v), want %d", c, err, n)
	}
	for i := range n {
		want := fmt.Sprintf(`"text":"message %d"`, i)
		if i%4 == 1 {
			want = fmt.Sprintf(`"text":"message %d, first half and second"`, i)
		}
		if !strings.Contains(shown.String(), want) {
			t.Errorf("message %d never shown", i)
		}
	}
}

// `bsc receive` over TLS with basic auth: a forward from a client that
// trusts the CA and knows the password is stored; a wrong password is
// refused; plain HTTP on a non-loopback address needs explicit consent.
func TestBSCReceiveTLSBasicAuth(t *testing.T) {
	bin := testBinary(t)
	dir := t.TempDir()
	pki := secrettest.NewPKI(t)
	pw := secrettest.WriteFile(t, dir, "fwd", "basic-"+randHex(t, 8)+"\n", 0o600)
	addr := fmt.Sprintf("127.0.0.1:%d", mqtttest.FreePort(t))
	p := startAgentProc(t, bin, "bsc", "receive", "--listen", addr, "--secret-file", pw, "--basic-user", "bsc",
		"--tls-cert", pki.ServerCert, "--tls-key", pki.ServerKey, "--store", filepath.Join(dir, "r.db"), "--json")
	p.waitStderr(t, "receiving forwards at https://")
	secret, err := os.ReadFile(pw)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsTrusting(t, pki.CAFile)}, Timeout: 10 * time.Second}
	post := func(password string) int {
		body := `{"id":5,"payload":"over tls","submit_date":"2026-12-04 20:00:00","dest_address":"5432145","source_address":"882285100012345","dcs":0,"pid":0,"endpoint":{"id":1000,"name":"` + testICCID + `"}}`
		req, err := http.NewRequest(http.MethodPost, "https://"+addr+"/", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth("bsc", password)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("guess"); code != http.StatusUnauthorized {
		t.Errorf("wrong password: %d", code)
	}
	if code := post(strings.TrimSpace(string(secret))); code != http.StatusNoContent {
		t.Errorf("right password: %d", code)
	}
	waitBuffer(t, p, &p.stdout, `"text":"over tls"`)
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	o := cli(t, "", "bsc", "receive", "--listen", "0.0.0.0:0", "--secret-file", pw)
	if o.code != 2 || !strings.Contains(o.stderr, "--allow-plaintext") {
		t.Errorf("plain HTTP on 0.0.0.0: code %d, %q", o.code, o.stderr)
	}
}

// Usage mistakes of `bsc sms send` are caught before any request.
func TestBSCSMSSendUsage(t *testing.T) {
	dir := t.TempDir()
	key := secrettest.WriteFile(t, dir, "k", randHex(t, 32)+"\n", 0o600)
	short := secrettest.WriteFile(t, dir, "short", randHex(t, 8)+"\n", 0o600)
	cfg := bscConfig(t, "http://127.0.0.1:1", testPW)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--text", "a", "--command", "ping"}, 2, "exactly one of --text and --command"},
		{[]string{}, 2, "exactly one of --text and --command"},
		{[]string{"--command", "ping"}, 2, "--command needs --key-file"},
		{[]string{"--command", " ", "--key-file", key}, 2, "--command is empty"},
		{[]string{"--command", "reboot-now", "--key-file", key}, 2, "unknown command"},
		{[]string{"--command", "recover", "--key-file", key}, 2, "takes 1 argument"},
		{[]string{"--command", "ping", "--key-file", short}, 1, "unusable key"},
	} {
		args := append([]string{"bsc", "sms", "send", "--config", cfg, "--iccid", testICCID}, c.args...)
		if o := cli(t, "", args...); o.code != c.code || !strings.Contains(o.stderr, c.want) {
			t.Errorf("%q: code %d, stderr %q; want %d and %q", c.args, o.code, o.stderr, c.code, c.want)
		}
	}
}
