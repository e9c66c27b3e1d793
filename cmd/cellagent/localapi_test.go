package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"cellagent/agent"
	"cellagent/modem/bg96emu"
	"cellagent/transport/localapi"
	"cellagent/transport/mqtt/mqtttest"
)

// The local API as gateway programs and the CLI see it: the real binary,
// the simulator on a pty, a real mosquitto, requests on the socket.

var (
	killOnce sync.Once
	killPath string
	killErr  error
)

// apikillBinary is the command built with the apikill tag: it can die
// between committing an SMS from the API and answering.
func apikillBinary(t *testing.T) string {
	t.Helper()
	bin := testBinary(t)
	killOnce.Do(func() {
		killPath = filepath.Join(filepath.Dir(bin), "cellagent-apikill")
		out, err := exec.Command("go", "build", "-tags", "apikill", "-o", killPath, ".").CombinedOutput()
		if err != nil {
			killErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if killErr != nil {
		t.Fatal(killErr)
	}
	return killPath
}

// apiRig is one simulated modem and broker, and an agent process that
// can be started, killed and started again on them.
type apiRig struct {
	bin, dir, cfg string
	m             *bg96emu.Modem
	env           []string
	broker        *mqtttest.Broker
	proc          *agentProc
	c             *localapi.Client
}

func newAPIRig(t *testing.T, bin, dir string, extra ...string) *apiRig {
	t.Helper()
	m, tty := linkedSim(t, dir)
	b := mqtttest.Start(t, mqtttest.Options{})
	sections := map[string][]string{
		"modem": {"port = " + q(tty)},
		"mqtt":  {"broker = " + q(b.URL()), "allow_plaintext = true"},
		"state": {"dir = " + q(filepath.Join(dir, "state"))},
		"sms":   {"per_minute = 1000", "per_hour = 10000", "per_day = 100000"},
	}
	cfg := agentConfig(t, dir, "cellagent.toml", sections)
	// Sections agentConfig does not know, as "section.key = value".
	more := map[string][]string{}
	for _, l := range extra {
		sec, kv, _ := strings.Cut(l, ".")
		more[sec] = append(more[sec], kv)
	}
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for sec, lines := range more {
		fmt.Fprintf(f, "[%s]\n%s\n", sec, strings.Join(lines, "\n"))
	}
	f.Close()
	return &apiRig{bin: bin, dir: dir, cfg: cfg, m: m, broker: b, c: localapi.NewClient(filepath.Join(dir, localapi.SocketName))}
}

// start runs the agent and waits until its API reports the modem up.
func (r *apiRig) start(t *testing.T) {
	t.Helper()
	p := startAgentProcEnv(t, r.bin, r.env, "run", "--config", r.cfg, "--runtime-dir", r.dir)
	r.proc = p
	deadline := time.Now().Add(20 * time.Second)
	for {
		if st, err := r.status(); err == nil && st.Link.Up {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("agent exited (%v):\n%s", p.err, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent API never reported the link up:\n%s", p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *apiRig) status() (agent.Status, error) {
	var st agent.Status
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := r.c.Status(ctx)
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	return st, err
}

// waitSMS waits until the message reaches a final state.
func (r *apiRig) waitSMS(t *testing.T, id string) localapi.SMSStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := r.c.SMS(context.Background(), id)
		if err == nil && st.Final(false) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not sent within 30 s: %+v, %v", id, st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func countSent(m *bg96emu.Modem, text string) int {
	n := 0
	for _, s := range m.SentMessages() {
		if s.Text == text {
			n++
		}
	}
	return n
}

// An SMS whose answer was lost because the agent died right after
// committing it is sent once when the client retries with its key after
// the restart. The same retry without a key — the control — sends it
// twice, so the test can tell.
func TestAPISMSOnceAcrossKill(t *testing.T) {
	bin := apikillBinary(t)
	dir := t.TempDir()
	r := newAPIRig(t, bin, dir)
	flag := filepath.Join(dir, "kill-after-queued")
	r.env = []string{"CELLAGENT_TEST_KILL_AFTER_QUEUED=" + flag}

	for _, withKey := range []bool{true, false} {
		text := fmt.Sprintf("once across a kill (key %v)", withKey)
		req := localapi.SMSRequest{To: "5432145", Text: text}
		if withKey {
			req.IdempotencyKey = "app-kill-1"
		}
		if err := os.WriteFile(flag, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		r.start(t)
		_, err := r.c.SendSMS(context.Background(), req)
		if err == nil {
			t.Fatal("the answer arrived; the agent should have died before it")
		}
		<-r.proc.done
		ws, ok := r.proc.cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ok || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("agent ended with %v, want SIGKILL", r.proc.err)
		}
		r.start(t)
		q, err := r.c.SendSMS(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if withKey && (q.ID != "local:app-kill-1" || !q.Duplicate) {
			t.Fatalf("retry with the key: %+v, want the first id as a duplicate", q)
		}
		r.waitSMS(t, q.ID)
		// Whatever else the restart queued would have been sent with it.
		time.Sleep(500 * time.Millisecond)
		n := countSent(r.m, text)
		switch {
		case withKey && n != 1:
			t.Errorf("with a key: sent %d times, want once", n)
		case !withKey && n != 2:
			t.Errorf("control without a key: sent %d times, want twice (else the test proves nothing)", n)
		}
		t.Logf("key %v: the simulator received %q %d time(s)", withKey, text, n)
		if err := r.proc.stop(t, syscall.SIGTERM); err != nil {
			t.Fatalf("stop: %v", err)
		}
	}
}

// A reader of /v1/events that goes away — and meanwhile the agent
// restarts — and comes back with its cursor misses no MT SMS.
func TestAPIEventsReaderMissesNothing(t *testing.T) {
	bin := testBinary(t)
	dir := t.TempDir()
	r := newAPIRig(t, bin, dir)
	r.start(t)

	var cursor uint64
	seen := map[string]int{}
	errEnough := errors.New("enough")
	// read follows the stream until want messages are seen.
	read := func(want int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		err := r.c.Events(ctx, cursor, func(e localapi.Event) error {
			cursor = e.Seq
			if e.Type == localapi.EventGap {
				t.Errorf("gap: %+v", e.Gap)
			}
			if e.SMS != nil {
				seen[e.SMS.Text]++
			}
			if len(seen) >= want {
				return errEnough
			}
			return nil
		})
		if !errors.Is(err, errEnough) {
			t.Fatalf("stream: %v (saw %d of %d)", err, len(seen), want)
		}
	}
	deliver := func(from, to int) {
		for i := from; i < to; i++ {
			if err := r.m.DeliverText("+491701234567", fmt.Sprintf("mt %d", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	deliver(0, 3)
	read(3)
	deliver(3, 6)
	// Away while three arrive, and across an agent restart.
	time.Sleep(time.Second)
	if err := r.proc.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deliver(6, 9)
	r.start(t)
	deliver(9, 12)
	read(12)
	var missing []string
	dups := 0
	for i := range 12 {
		n := seen[fmt.Sprintf("mt %d", i)]
		if n == 0 {
			missing = append(missing, fmt.Sprint(i))
		}
		dups += max(0, n-1)
	}
	if len(missing) > 0 {
		t.Fatalf("missed MT %v; saw %v", missing, seen)
	}
	t.Logf("12 MT SMS across a disconnect and a restart: none missed, %d repeated", dups)
}

// The CLI while the agent runs: the same commands, through the socket.
func TestCLIThroughAgent(t *testing.T) {
	bin := testBinary(t)
	dir := t.TempDir()
	r := newAPIRig(t, bin, dir, "api.at_commands = true")
	r.start(t)
	tty := filepath.Join(dir, "ttyBG96")
	rd := "--runtime-dir=" + dir
	if err := r.m.DeliverText("+491701234567", "to the agent's inbox"); err != nil {
		t.Fatal(err)
	}

	o := cli(t, "", "sms", "send", "--to", "5432145", "--text", "from the cli", "--wait", "30s", rd)
	if o.code != 0 || !strings.Contains(o.stdout, "1 part, GSM 7-bit") || !strings.Contains(o.stdout, "queued by the agent as local:cli-") ||
		!strings.Contains(o.stdout, "message reference: ") {
		t.Errorf("sms send: %d\n%s%s", o.code, o.stdout, o.stderr)
	}
	// --port names the agent's port: the agent takes the message.
	o = cli(t, "", "sms", "send", "--port", tty, "--to", "5432145", "--text", "port given", rd)
	if o.code != 0 || !strings.Contains(o.stdout, "queued by the agent as") {
		t.Errorf("sms send --port: %d\n%s%s", o.code, o.stdout, o.stderr)
	}
	for _, args := range [][]string{{"at", "AT+CSQ", rd}, {"at", "--port", tty, "AT+CSQ", rd}} {
		o = cli(t, "", args...)
		if o.code != 0 || !strings.HasPrefix(o.stdout, "+CSQ: ") || !strings.HasSuffix(o.stdout, "\nOK\n") {
			t.Errorf("%v: %d %q %q", args, o.code, o.stdout, o.stderr)
		}
	}
	o = cli(t, "", "at", "ATE1", rd)
	if o.code != 1 || !strings.Contains(o.stderr, "force") {
		t.Errorf("at ATE1: %d %q %q, want a refusal naming force", o.code, o.stdout, o.stderr)
	}
	o = cli(t, "", "at", "AT+CMEE=9", "--force", rd)
	if o.code != 1 || !strings.Contains(o.stderr, "ERROR") {
		t.Errorf("at AT+CMEE=9 --force: %d %q %q, want the modem's error", o.code, o.stdout, o.stderr)
	}
	o = cli(t, "", "status", rd)
	flat := strings.Join(strings.Fields(o.stdout), " ")
	// Built for the request, but stamped at whole seconds (the JSON
	// contract), so it can read as up to a second old.
	if o.code != 0 || !strings.Contains(flat, "Device id "+r.m.ICCID()) || !(strings.Contains(flat, "written 0s ago") || strings.Contains(flat, "written 1s ago")) {
		t.Errorf("status: %d\n%s%s", o.code, o.stdout, o.stderr)
	}
	o = cli(t, "", "status", "--json", rd)
	var st agent.Status
	if o.code != 0 || json.Unmarshal([]byte(o.stdout), &st) != nil || !st.Link.Up {
		t.Errorf("status --json: %d\n%s%s", o.code, o.stdout, o.stderr)
	}
	o = cli(t, "", "sms", "list", rd)
	if o.code != 0 || !strings.Contains(o.stdout, "to the agent's inbox") || !strings.Contains(o.stdout, "received by the agent") {
		t.Errorf("sms list: %d\n%s%s", o.code, o.stdout, o.stderr)
	}
	o = cli(t, "", "recover", "reattach", rd)
	if o.code != 0 || !strings.Contains(o.stdout, "reattach queued") {
		t.Errorf("recover: %d %q %q", o.code, o.stdout, o.stderr)
	}
	o = cli(t, "", "recover", "bogus", rd)
	if o.code != 1 || !strings.Contains(o.stderr, "unknown step") {
		t.Errorf("recover bogus: %d %q %q", o.code, o.stdout, o.stderr)
	}
	if n := countSent(r.m, "from the cli"); n != 1 {
		t.Errorf("the cli's SMS reached the simulator %d times", n)
	}
	if err := r.proc.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// No agent: the commands say so, and --port works again.
	o = cli(t, "", "sms", "send", "--to", "5432145", "--text", "x", rd)
	if o.code != 2 || !strings.Contains(o.stderr, "--port is required when no agent runs") {
		t.Errorf("no agent, no port: %d %q", o.code, o.stderr)
	}
	o = cli(t, "", "at", "--port", tty, "AT+CSQ", rd)
	if o.code != 0 || !strings.HasPrefix(o.stdout, "+CSQ: ") {
		t.Errorf("no agent, --port: %d %q %q", o.code, o.stdout, o.stderr)
	}
}

// Access is the socket's group: a user in it gets through, one outside
// is refused by the kernel.
func TestAPISocketGroup(t *testing.T) {
	bin := testBinary(t)
	if os.Getuid() != 0 {
		t.Skip("needs root to run clients as other users")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("no setpriv")
	}
	// Directories others may traverse, so only the socket's mode decides.
	dir, err := os.MkdirTemp("", "cellagent-group-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	pub := filepath.Join(dir, "cellagent")
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := newAPIRig(t, pub, dir, "api.group = \"nogroup\"")
	r.start(t)
	sock := filepath.Join(dir, localapi.SocketName)
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want 0660", fi.Mode().Perm())
	}
	as := func(group string) (string, error) {
		out, err := exec.Command("setpriv", "--reuid=nobody", "--regid="+group, "--clear-groups",
			pub, "status", "--runtime-dir", dir).CombinedOutput()
		return string(out), err
	}
	if out, err := as("nogroup"); err != nil || !strings.Contains(out, "Device id") {
		t.Errorf("a member of the socket's group: %v\n%s", err, out)
	}
	out, err := as("daemon")
	if err == nil || !strings.Contains(out, "permission denied") || !strings.Contains(out, "group") {
		t.Errorf("a user outside the group: %v\n%s", err, out)
	}
	t.Logf("outside the group: %s", strings.TrimSpace(out))
}

// Abuse of the socket — malformed JSON, 10 MB bodies, slow clients
// holding connections, 100 clients at once — while the telemetry loop
// polls every second and MT and MO SMS flow. The loops' pace is
// measured and printed; that every MT and MO message got through is
// checked.
func TestAPIAbuseKeepsLoopsPace(t *testing.T) {
	bin := testBinary(t)
	dir := t.TempDir()
	r := newAPIRig(t, bin, dir, "telemetry.poll = \"1s\"", "telemetry.heartbeat = \"1s\"")
	r.start(t)

	// The telemetry loop's rounds, as the fleet sees them: with a
	// heartbeat of one poll every round publishes. Not through the API,
	// which the abuse keeps busy.
	var mu sync.Mutex
	var polls []time.Time
	sub := paho.NewClient(paho.NewClientOptions().AddBroker(r.broker.URL()).SetClientID("test-pace"))
	if tok := sub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer sub.Disconnect(100)
	if tok := sub.Subscribe("cellagent/v1/+/telemetry", 0, func(paho.Client, paho.Message) {
		mu.Lock()
		polls = append(polls, time.Now())
		mu.Unlock()
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	intervals := func(from, to time.Time) []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		var out []time.Duration
		for i := 1; i < len(polls); i++ {
			if polls[i-1].After(from) && polls[i].Before(to) {
				out = append(out, polls[i].Sub(polls[i-1]))
			}
		}
		return out
	}

	// SMS traffic during both phases: one MT and one MO a second.
	var mtSent, moIDs []string
	var moMu sync.Mutex
	var moSenders sync.WaitGroup
	traffic := func(phase string, d time.Duration) {
		end := time.Now().Add(d)
		for i := 0; time.Now().Before(end); i++ {
			mt := fmt.Sprintf("%s mt %d", phase, i)
			if err := r.m.DeliverText("+491701234567", mt); err != nil {
				t.Error(err)
			}
			mtSent = append(mtSent, mt)
			moSenders.Add(1)
			go func() {
				defer moSenders.Done()
				for try := 0; try < 50; try++ {
					q, err := r.c.SendSMS(context.Background(), localapi.SMSRequest{To: "5432145",
						Text: fmt.Sprintf("%s mo %d", phase, i), IdempotencyKey: fmt.Sprintf("%s-%d", phase, i)})
					if err == nil {
						moMu.Lock()
						moIDs = append(moIDs, q.ID)
						moMu.Unlock()
						return
					}
					time.Sleep(200 * time.Millisecond)
				}
				t.Errorf("%s mo %d never accepted", phase, i)
			}()
			time.Sleep(time.Second)
		}
	}

	quietFrom := time.Now()
	traffic("quiet", 8*time.Second)
	quietTo := time.Now()

	// The abuse, from another process: in this one it would starve the
	// simulator, and measure the test rather than the agent.
	abuser := exec.Command(os.Args[0], "-test.run=^TestAPIAbuser$", "-test.v")
	abuser.Env = append(os.Environ(), abuserEnv+"="+filepath.Join(dir, localapi.SocketName))
	var abuseOut lockedBuffer
	abuser.Stdout, abuser.Stderr = &abuseOut, &abuseOut
	if err := abuser.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if abuser.ProcessState == nil {
			_ = abuser.Process.Kill()
			_ = abuser.Wait()
		}
	}()
	waitFor(t, &abuseOut, "abusing")
	abuseFrom := time.Now()
	traffic("abuse", 15*time.Second)
	abuseTo := time.Now()
	_ = abuser.Process.Signal(os.Interrupt)
	if err := abuser.Wait(); err != nil {
		t.Fatalf("abuser: %v\n%s", err, abuseOut.String())
	}

	// Every MT arrived in the feed, every MO was sent.
	deadline := time.Now().Add(60 * time.Second)
	for {
		in, err := agentInbox(context.Background(), r.c, 0)
		got := map[string]bool{}
		if err == nil {
			for _, it := range in {
				got[it.Text] = true
			}
		}
		var missing []string
		for _, mt := range mtSent {
			if !got[mt] {
				missing = append(missing, mt)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("MT never reached the inbox: %v (%v)", missing, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var moLatency []time.Duration
	moSenders.Wait()
	moMu.Lock()
	ids := append([]string(nil), moIDs...)
	moMu.Unlock()
	for _, id := range ids {
		st := r.waitSMS(t, id)
		if st.State != "sent" {
			t.Errorf("%s: %+v", id, st)
		}
		moLatency = append(moLatency, st.SentAt.Sub(st.Created))
	}
	q, a := intervals(quietFrom, quietTo), intervals(abuseFrom, abuseTo)
	if len(a) == 0 {
		t.Fatalf("the telemetry loop did not publish during the abuse (at %v)", polls)
	}
	t.Logf("telemetry poll interval (configured 1s): quiet %s, under abuse %s", spread(q), spread(a))
	t.Logf("MO queued→sent: %s over %d messages", spread(moLatency), len(moLatency))
	for _, l := range strings.Split(abuseOut.String(), "\n") {
		if strings.Contains(l, "abuse ") {
			t.Log(strings.TrimSpace(l))
		}
	}
	st, err := r.status()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after the abuse: %d goroutines, heap %d kB", st.Goroutines, st.HeapBytes>>10)
}

// spread prints n, median and max of ds.
func spread(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return fmt.Sprintf("n=%d median %s max %s", len(s), s[len(s)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
}

const abuserEnv = "CELLAGENT_TEST_ABUSE_SOCKET"

// TestAPIAbuser is the abusive neighbour of TestAPIAbuseKeepsLoopsPace,
// run as a process of its own: 100 clients sending malformed JSON, 10 MB
// bodies, status requests and AT commands the agent has off, and 30 slow
// clients that send half a request and hold the connection, until
// interrupted. It prints what it got.
func TestAPIAbuser(t *testing.T) {
	sock := os.Getenv(abuserEnv)
	if sock == "" {
		t.Skip("run by TestAPIAbuseKeepsLoopsPace")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var mu sync.Mutex
	counts := map[string]int{}
	count := func(k string) {
		mu.Lock()
		counts[k]++
		mu.Unlock()
	}
	big := []byte(`{"to":"5432145","text":"` + strings.Repeat("x", 10<<20) + `"}`)
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := localapi.NewClient(sock)
			hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", sock)
			}}}
			kind := []string{"malformed", "10MB", "status", "at-off"}[i%4]
			for ctx.Err() == nil {
				var err error
				code := 0
				switch kind {
				case "malformed", "10MB":
					body := []byte(`{"to":"5432145","text":`)
					if kind == "10MB" {
						body = big
					}
					var resp *http.Response
					req, _ := http.NewRequestWithContext(ctx, "POST", "http://agent/v1/sms", bytes.NewReader(body))
					if resp, err = hc.Do(req); err == nil {
						code = resp.StatusCode
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				case "status":
					_, err = c.Status(ctx)
				case "at-off":
					_, err = c.AT(ctx, localapi.ATRequest{Command: "AT+CSQ"})
				}
				var ae *localapi.APIError
				switch {
				case errors.As(err, &ae):
					code = ae.Code
				case err != nil && ctx.Err() == nil:
					count(kind + " transport error")
					continue
				case err != nil:
					continue
				}
				if code == 0 {
					code = 200
				}
				count(fmt.Sprint(kind, " ", code))
			}
		}()
	}
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				conn, err := net.DialTimeout("unix", sock, time.Second)
				if err != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				_, _ = conn.Write([]byte("POST /v1/sms HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n{"))
				stopRead := context.AfterFunc(ctx, func() { conn.Close() })
				_, _ = conn.Read(make([]byte, 512))
				stopRead()
				conn.Close()
				count("slow client cut off")
			}
		}()
	}
	fmt.Println("abusing")
	wg.Wait()
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("abuse %s: %d\n", k, counts[k])
	}
}

// waitFor waits until b holds want.
func waitFor(t *testing.T, b *lockedBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(b.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("never saw %q in %q", want, b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
