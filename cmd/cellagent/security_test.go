package main

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"cellagent/modem/bg96emu"
	"cellagent/modem/bg96emu/bg96emutest"
	"cellagent/transport/bsc/bscemu"
	"cellagent/transport/bsc/bscemu/bscemutest"
	"cellagent/transport/mqtt/mqtttest"
	"cellagent/transport/secret/secrettest"
)

// Security properties of the agent as a process: what a gateway's owner
// sees in `ps`, the journal, the broker and a crash dump, and what a
// broker user can make it do. The packages' own tests cover the rules one
// by one (see README.md, "Reliability and security"); these run the
// binary.

// agentProc is one `cellagent` process with its output captured.
type agentProc struct {
	cmd            *exec.Cmd
	stdout, stderr lockedBuffer
	done           chan struct{}
	err            error
}

func startAgentProc(t *testing.T, bin string, args ...string) *agentProc {
	t.Helper()
	return startAgentProcEnv(t, bin, nil, args...)
}

// startAgentProcEnv is startAgentProc with env added to the process's.
func startAgentProcEnv(t *testing.T, bin string, env []string, args ...string) *agentProc {
	t.Helper()
	p := &agentProc{done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", strings.Join(args, " "), p.stderr.String())
		}
	})
	return p
}

// stop signals the process and waits for it to exit.
func (p *agentProc) stop(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(20 * time.Second):
		t.Fatalf("no exit within 20 s of %v", sig)
		return nil
	}
}

// waitStderr waits until the process has logged want.
func (p *agentProc) waitStderr(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.stderr.String(), want) {
		select {
		case <-p.done:
			t.Fatalf("exited (%v) before logging %q", p.err, want)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("never logged %q", want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// procFile reads /proc/<pid>/<name> of a running process.
func (p *agentProc) procFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", p.cmd.Process.Pid, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fleetTap records every message under a topic filter, as a fleet
// operator's client would see it.
type fleetTap struct {
	cli  paho.Client
	mu   sync.Mutex
	msgs []string // "topic payload"
}

func tapBroker(t *testing.T, url, user, pass, caFile, filter string) *fleetTap {
	t.Helper()
	f := &fleetTap{}
	o := paho.NewClientOptions().AddBroker(url).SetClientID("tap-" + randHex(t, 4)).SetUsername(user).SetPassword(pass)
	if caFile != "" {
		o.SetTLSConfig(tlsTrusting(t, caFile))
	}
	f.cli = paho.NewClient(o)
	if tok := f.cli.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("tap connect: %v", tok.Error())
	}
	if tok := f.cli.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		f.mu.Lock()
		f.msgs = append(f.msgs, m.Topic()+" "+string(m.Payload()))
		f.mu.Unlock()
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("tap subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { f.cli.Disconnect(100) })
	return f
}

func (f *fleetTap) publish(t *testing.T, topic, payload string) {
	t.Helper()
	if tok := f.cli.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// forget drops what was recorded, so a wait sees only what comes next.
func (f *fleetTap) forget() {
	f.mu.Lock()
	f.msgs = nil
	f.mu.Unlock()
}

func (f *fleetTap) all() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.msgs, "\n")
}

// wait returns the first message on a topic ending in suffix that contains
// every want.
func (f *fleetTap) wait(t *testing.T, suffix string, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		f.mu.Lock()
		for _, m := range f.msgs {
			topic, payload, _ := strings.Cut(m, " ")
			ok := strings.HasSuffix(topic, suffix)
			for _, w := range want {
				ok = ok && strings.Contains(payload, w)
			}
			if ok {
				f.mu.Unlock()
				return payload
			}
		}
		f.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no message on *%s with %q; seen:\n%s", suffix, want, f.all())
	return ""
}

// quiet fails if a message on a topic containing part arrives within d.
func (f *fleetTap) quiet(t *testing.T, d time.Duration, part string) {
	t.Helper()
	time.Sleep(d)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.msgs {
		if topic, _, _ := strings.Cut(m, " "); strings.Contains(topic, part) {
			t.Errorf("unexpected message: %s", m)
		}
	}
}

// tlsTrusting is a client TLS configuration that trusts the CA in caFile.
func tlsTrusting(t *testing.T, caFile string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

func randHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// linkedSim is a simulated modem behind a link path in dir.
func linkedSim(t *testing.T, dir string) (*bg96emu.Modem, string) {
	t.Helper()
	m := startSim(t)
	tty := bg96emutest.Link(t, m, dir)
	return m, tty
}

// agentConfig writes a configuration for `cellagent run` from its
// sections' lines.
func agentConfig(t *testing.T, dir, name string, sections map[string][]string) string {
	t.Helper()
	var b strings.Builder
	for _, s := range []string{"device", "modem", "sms", "sms_commands", "bsc", "mqtt", "data", "supervisor", "state", "log"} {
		if lines, ok := sections[s]; ok {
			fmt.Fprintf(&b, "[%s]\n%s\n", s, strings.Join(lines, "\n"))
		}
	}
	return secrettest.WriteFile(t, dir, name, b.String(), 0o600)
}

func q(s string) string { return fmt.Sprintf("%q", s) }

// Secrets planted in the MQTT and BSC password files never show up in the
// process's command line or environment, its log (through a wrong broker
// password, a platform that refuses the BSC password, commands, SMS both
// ways), anything it publishes, its status file, its goroutine dump on
// SIGQUIT, or what `config check`, `run` and `bsc quota` print about good
// and bad configurations.
func TestSecretsStayOut(t *testing.T) {
	bin := testBinary(t)
	dir := t.TempDir()
	mqttSecret, bscSecret := "mqtt-secret-"+randHex(t, 12), "bsc-secret-"+randHex(t, 12)
	mqttPW := secrettest.WriteFile(t, dir, "mqtt-password", mqttSecret+"\n", 0o600)
	bscPW := secrettest.WriteFile(t, dir, "bsc-password", bscSecret+"\n", 0o600)
	m, tty := linkedSim(t, dir)

	// The platform knows another password: every BSC call gets a 401.
	plat := bscemutest.Start(t, bscemu.Config{Users: map[string]string{"admin": "the-platforms-password"}, SIMs: []bscemu.SIMConfig{{ICCID: testICCID}}}, nil)
	// First a broker that wants another password, then one that takes it.
	wrong := mqtttest.Start(t, mqtttest.Options{Users: map[string]string{"gw": "rotated-" + randHex(t, 4), "fleet": "fleet-pw"}})
	right := mqtttest.Start(t, mqtttest.Options{Users: map[string]string{"gw": mqttSecret, "fleet": "fleet-pw"}})
	tapWrong := tapBroker(t, wrong.URL(), "fleet", "fleet-pw", "", "#")
	tapRight := tapBroker(t, right.URL(), "fleet", "fleet-pw", "", "#")

	config := func(name, broker string) string {
		return agentConfig(t, dir, name, map[string][]string{
			"device": {"id = \"gw1\""},
			"modem":  {"port = " + q(tty)},
			"bsc":    {"base_url = " + q(plat.URL()), "username = \"admin\"", "password_file = " + q(bscPW), "iccid = " + q(testICCID)},
			"mqtt": {"broker = " + q(broker), "allow_plaintext = true", "username = \"gw\"", "password_file = " + q(mqttPW),
				"commands = true", "keepalive = \"10s\""},
			"state": {"dir = " + q(filepath.Join(dir, "state"))},
			"log":   {"level = \"debug\""},
		})
	}
	seen := map[string]string{}

	// A session against a broker that refuses the password.
	p := startAgentProc(t, bin, "run", "--config", config("wrong.toml", wrong.URL()), "--runtime-dir", dir)
	p.waitStderr(t, "mqtt: connect failed")
	seen["run 1 cmdline"] = p.procFile(t, "cmdline")
	seen["run 1 environ"] = p.procFile(t, "environ")
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("run 1 exit: %v", err)
	}
	seen["run 1 stdout"], seen["run 1 stderr"] = p.stdout.String(), p.stderr.String()

	// A working session with errors: the platform refuses the BSC
	// password; SMS flow both ways; then SIGQUIT for a goroutine dump.
	p = startAgentProc(t, bin, "run", "--config", config("right.toml", right.URL()), "--runtime-dir", dir)
	tapRight.wait(t, "gw1/status", `"state":"online"`)
	tapRight.publish(t, "cellagent/v1/gw1/cmd/recover", `{"id":"r1","step":"quota"}`)
	tapRight.wait(t, "gw1/event", `"step":"quota"`, `"outcome":"failed"`)
	if err := m.DeliverText("+491701234567", "hello gateway"); err != nil {
		t.Fatal(err)
	}
	tapRight.wait(t, "gw1/sms/in", "hello gateway")
	tapRight.publish(t, "cellagent/v1/gw1/cmd/sms/send", `{"id":"s1","to":"+491701234567","text":"hello fleet"}`)
	tapRight.wait(t, "gw1/sms/out/result", `"id":"s1"`, `"state":"sent"`)
	if !strings.Contains(p.stderr.String(), "401") && !strings.Contains(p.stderr.String(), "access refused") {
		t.Errorf("the refused BSC password left no trace in the log:\n%s", p.stderr.String())
	}
	seen["run 2 cmdline"] = p.procFile(t, "cmdline")
	seen["run 2 environ"] = p.procFile(t, "environ")
	status, err := os.ReadFile(filepath.Join(dir, "status.json"))
	if err != nil {
		t.Fatal(err)
	}
	seen["status.json"] = string(status)
	o := cli(t, "", "status", "--runtime-dir", dir)
	seen["status command"] = o.stdout + o.stderr
	if err := p.stop(t, syscall.SIGQUIT); err == nil {
		t.Error("SIGQUIT: exit status 0, want the runtime's crash exit")
	}
	seen["run 2 stdout"], seen["run 2 stderr"] = p.stdout.String(), p.stderr.String()
	if !strings.Contains(p.stderr.String(), "goroutine ") || !strings.Contains(p.stderr.String(), "SIGQUIT") {
		t.Errorf("no goroutine dump after SIGQUIT:\n%s", p.stderr.String())
	}
	seen["broker with the wrong password"] = tapWrong.all()
	seen["broker"] = tapRight.all()

	// Configurations, good and bad, through `config check`, `run` and
	// `bsc quota`.
	good := config("check-good.toml", right.URL())
	openPW := secrettest.WriteFile(t, dir, "open-password", mqttSecret+"\n", 0o644)
	bad := map[string]string{
		"password file readable by others": agentConfig(t, dir, "open.toml", map[string][]string{
			"modem": {"port = " + q(tty)}, "mqtt": {"broker = " + q(right.URL()), "allow_plaintext = true", "username = \"gw\"", "password_file = " + q(openPW)},
		}),
		"secret pasted into the file": agentConfig(t, dir, "pasted.toml", map[string][]string{
			"modem": {"port = " + q(tty)}, "mqtt": {"broker = " + q(right.URL()), "allow_plaintext = true", "username = \"gw\"", "password = " + q(mqttSecret)},
			"bsc": {"base_url = " + q(plat.URL()), "username = \"admin\"", "password = " + q(bscSecret)},
		}),
		"secret as the username": agentConfig(t, dir, "swapped.toml", map[string][]string{
			"modem": {"port = " + q(tty)}, "mqtt": {"broker = \"tcp://broker.example:1883\"", "username = " + q(mqttSecret), "password_file = " + q(mqttPW), "keepalive = \"1s\""},
		}),
	}
	out, err := exec.Command(bin, "config", "check", good).CombinedOutput()
	if err != nil {
		t.Errorf("config check on the good file: %v\n%s", err, out)
	}
	seen["config check good"] = string(out)
	for name, path := range bad {
		out, err := exec.Command(bin, "config", "check", path).CombinedOutput()
		if err == nil {
			t.Errorf("config check %s: accepted", name)
		}
		seen["config check, "+name] = string(out)
		out, err = exec.Command(bin, "run", "--config", path).CombinedOutput()
		if err == nil {
			t.Errorf("run %s: started", name)
		}
		seen["run, "+name] = string(out)
	}
	out, err = exec.Command(bin, "bsc", "quota", "--config", good).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "access refused") {
		t.Errorf("bsc quota with the refused password: %v\n%s", err, out)
	}
	seen["bsc quota"] = string(out)

	// The secrets, and their forms on the wire: base64 in a Basic
	// Authorization header.
	forms := map[string]string{
		"mqtt password": mqttSecret, "bsc password": bscSecret,
		"bsc basic auth": base64.StdEncoding.EncodeToString([]byte("admin:" + bscSecret)),
		"mqtt base64":    base64.StdEncoding.EncodeToString([]byte(mqttSecret)),
		"bsc base64":     base64.StdEncoding.EncodeToString([]byte(bscSecret)),
	}
	for where, text := range seen {
		for what, secret := range forms {
			if strings.Contains(text, secret) {
				t.Errorf("the %s is in %s", what, where)
			}
		}
	}
	if !strings.Contains(seen["broker"], "hello gateway") || !strings.Contains(seen["run 2 stderr"], "SMS accepted") {
		t.Error("the session did not run far enough for the search to mean anything")
	}
}

// With commands off (the default), a command gets no result and does
// nothing; the same command with commands on is answered and sent, so the
// silence is the agent's doing and not the test's.
func TestCommandsOffByDefault(t *testing.T) {
	bin := testBinary(t)
	dir := t.TempDir()
	m, tty := linkedSim(t, dir)
	b := mqtttest.Start(t, mqtttest.Options{})
	tap := tapBroker(t, b.URL(), "", "", "", "cellagent/v1/#")
	cfg := agentConfig(t, dir, "cellagent.toml", map[string][]string{
		"device": {"id = \"gw1\""}, "modem": {"port = " + q(tty)},
		"mqtt":  {"broker = " + q(b.URL()), "allow_plaintext = true"},
		"state": {"dir = " + q(filepath.Join(dir, "state"))},
	})
	p := startAgentProc(t, bin, "run", "--config", cfg)
	tap.wait(t, "gw1/status", `"state":"online"`)
	tap.publish(t, "cellagent/v1/gw1/cmd/sms/send", `{"id":"off-1","to":"+491701234567","text":"must not go"}`)
	tap.publish(t, "cellagent/v1/gw1/cmd/recover", `{"id":"off-2","step":"reboot"}`)
	tap.quiet(t, 3*time.Second, "/result")
	if sent := m.SentMessages(); len(sent) != 0 {
		t.Errorf("commands off, yet sent %+v", sent)
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	tap.forget()
	p = startAgentProc(t, bin, "run", "--config", cfg, "--commands")
	tap.wait(t, "gw1/status", `"state":"online"`)
	tap.publish(t, "cellagent/v1/gw1/cmd/sms/send", `{"id":"on-1","to":"+491701234567","text":"may go"}`)
	tap.wait(t, "gw1/cmd/sms/send/result", `"id":"on-1"`, `"ok":true`)
	tap.wait(t, "gw1/sms/out/result", `"id":"on-1"`, `"state":"sent"`)
	if sent := m.SentMessages(); len(sent) != 1 || sent[0].Text != "may go" {
		t.Errorf("commands on: sent %+v", sent)
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// Commands from the broker are bounded: an oversized payload and a
// destination outside the allow-list are refused with an error result, a
// burst beyond the rate limit is answered "rate limited", a command for
// another device id is neither answered nor run, and only what was
// accepted is sent.
func TestCommandAbuse(t *testing.T) {
	bin := testBinary(t)
	dir := t.TempDir()
	m, tty := linkedSim(t, dir)
	b := mqtttest.Start(t, mqtttest.Options{})
	tap := tapBroker(t, b.URL(), "", "", "", "cellagent/v1/#")
	const allowed = "+491701234567"
	cfg := agentConfig(t, dir, "cellagent.toml", map[string][]string{
		"device": {"id = \"gw1\""}, "modem": {"port = " + q(tty)},
		"mqtt":  {"broker = " + q(b.URL()), "allow_plaintext = true", "commands = true", "allow_to = [" + q(allowed) + "]"},
		"state": {"dir = " + q(filepath.Join(dir, "state"))},
	})
	p := startAgentProc(t, bin, "run", "--config", cfg)
	tap.wait(t, "gw1/status", `"state":"online"`)
	send := "cellagent/v1/gw1/cmd/sms/send"

	big := fmt.Sprintf(`{"id":"big","to":%q,"text":%q}`, allowed, strings.Repeat("x", 5000))
	tap.publish(t, send, big)
	tap.wait(t, "gw1/cmd/sms/send/result", `"ok":false`, "exceeds 4096")

	tap.publish(t, send, `{"id":"deny","to":"+15550100","text":"not on the list"}`)
	tap.wait(t, "gw1/cmd/sms/send/result", `"id":"deny"`, `"ok":false`, "allow-list")

	tap.publish(t, "cellagent/v1/other-gw/cmd/sms/send", fmt.Sprintf(`{"id":"other","to":%q,"text":"for someone else"}`, allowed))
	tap.quiet(t, 2*time.Second, "other-gw/cmd/sms/send/result")

	// The default budget is 6 a minute with a burst of 3.
	for i := range 6 {
		tap.publish(t, send, fmt.Sprintf(`{"id":"burst-%d","to":%q,"text":"burst %d"}`, i, allowed, i))
	}
	ok, limited := 0, 0
	for i := range 6 {
		res := tap.wait(t, "gw1/cmd/sms/send/result", fmt.Sprintf(`"id":"burst-%d"`, i))
		var r struct {
			OK    bool
			Error string
		}
		if err := json.Unmarshal([]byte(res), &r); err != nil {
			t.Fatal(err)
		}
		switch {
		case r.OK:
			ok++
		case strings.Contains(r.Error, "rate limited"):
			limited++
		default:
			t.Errorf("burst-%d: %s", i, res)
		}
	}
	if ok == 0 || limited == 0 {
		t.Errorf("burst of 6: %d accepted, %d rate limited", ok, limited)
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(m.SentMessages()) < ok && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	sent := m.SentMessages()
	if len(sent) != ok {
		t.Errorf("%d commands accepted, %d SMS sent", ok, len(sent))
	}
	for _, s := range sent {
		if s.To != allowed || !strings.HasPrefix(s.Text, "burst ") {
			t.Errorf("sent %q to %s", s.Text, s.To)
		}
	}
	for _, line := range strings.Split(tap.all(), "\n") {
		if topic, payload, _ := strings.Cut(line, " "); strings.HasSuffix(topic, "/result") && strings.Contains(payload, `"id":"other"`) {
			t.Errorf("the command for another device was answered: %s", line)
		}
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// TLS is verified by default: a broker whose certificate comes from a CA
// the agent was not given is refused with the verification error, and so
// is the operator API over https with a self-signed certificate; given
// the CA, both work.
func TestTLSVerifiedByDefault(t *testing.T) {
	bin := testBinary(t)
	dir := t.TempDir()
	_, tty := linkedSim(t, dir)
	b := mqtttest.Start(t, mqtttest.Options{TLS: true})
	ca := b.PKI().CAFile
	tap := tapBroker(t, b.URL(), "", "", ca, "cellagent/v1/#")

	tlsCfg, caPEM, err := bscemu.SelfSignedTLS("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	plat := bscemutest.Start(t, bscemu.Config{Users: map[string]string{"admin": "pw"}, SIMs: []bscemu.SIMConfig{{ICCID: testICCID}}}, tlsCfg)
	bscCA := secrettest.WriteFile(t, dir, "bsc-ca.pem", string(caPEM), 0o644)
	pw := secrettest.WriteFile(t, dir, "bsc-password", "pw\n", 0o600)

	config := func(name string, mqttCA, bscCAFile string) string {
		mq := []string{"broker = " + q(b.URL())}
		if mqttCA != "" {
			mq = append(mq, "ca_file = "+q(mqttCA))
		}
		bs := []string{"base_url = " + q(plat.URL()), "username = \"admin\"", "password_file = " + q(pw), "iccid = " + q(testICCID)}
		if bscCAFile != "" {
			bs = append(bs, "ca_file = "+q(bscCAFile))
		}
		return agentConfig(t, dir, name, map[string][]string{
			"device": {"id = \"gw1\""}, "modem": {"port = " + q(tty)}, "mqtt": append(mq, "commands = true"), "bsc": bs,
			"state": {"dir = " + q(filepath.Join(dir, "state"))},
		})
	}

	p := startAgentProc(t, bin, "run", "--config", config("untrusted.toml", "", ""))
	p.waitStderr(t, "certificate signed by unknown authority")
	tap.quiet(t, time.Second, "gw1/status")
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	out, err := exec.Command(bin, "bsc", "quota", "--config", config("bsc-untrusted.toml", ca, "")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "certificate") {
		t.Errorf("bsc quota against a self-signed platform without ca_file: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "bsc", "quota", "--config", config("bsc-trusted.toml", ca, bscCA)).CombinedOutput()
	if err != nil {
		t.Errorf("bsc quota with the platform's CA: %v\n%s", err, out)
	}

	// Trusting the broker's CA, the agent comes online; the operator API
	// without its CA still fails, in the recovery step that calls it.
	p = startAgentProc(t, bin, "run", "--config", config("trusted.toml", ca, ""))
	tap.wait(t, "gw1/status", `"state":"online"`)
	tap.publish(t, "cellagent/v1/gw1/cmd/recover", `{"id":"r1","step":"quota"}`)
	tap.wait(t, "gw1/event", `"step":"quota"`, `"outcome":"failed"`, "certificate")
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// Plain-text transports need an explicit setting: `config check` and
// `run` refuse a tcp:// broker (even on loopback) without
// allow_plaintext and plain http to a non-loopback operator API without
// allow_insecure_http, naming the key; with the setting both pass.
func TestPlaintextNeedsExplicitConsent(t *testing.T) {
	bin := testBinary(t)
	dir := t.TempDir()
	pw := secrettest.WriteFile(t, dir, "pw", "pw\n", 0o600)
	cases := []struct {
		name, key, body string
		ok              bool
	}{
		{"tcp broker", "mqtt.broker", "[mqtt]\nbroker = \"tcp://broker.example.com:1883\"\n", false},
		{"tcp broker on loopback", "mqtt.broker", "[mqtt]\nbroker = \"tcp://127.0.0.1:1883\"\n", false},
		{"tcp broker allowed", "", "[mqtt]\nbroker = \"tcp://broker.example.com:1883\"\nallow_plaintext = true\n", true},
		{"tls broker", "", "[mqtt]\nbroker = \"tls://broker.example.com:8883\"\n", true},
		{"http api", "bsc.base_url", "[bsc]\nbase_url = \"http://bsc.example.com\"\nusername = \"admin\"\npassword_file = " + q(pw) + "\n", false},
		{"http api allowed", "", "[bsc]\nbase_url = \"http://bsc.example.com\"\nusername = \"admin\"\npassword_file = " + q(pw) + "\nallow_insecure_http = true\n", true},
		{"http api on loopback", "", "[bsc]\nbase_url = \"http://127.0.0.1:8443\"\nusername = \"admin\"\npassword_file = " + q(pw) + "\n", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := secrettest.WriteFile(t, dir, strings.ReplaceAll(c.name, " ", "-")+".toml",
				"[modem]\nport = \"/dev/nonexistent-ttyX\"\n"+c.body, 0o600)
			out, err := exec.Command(bin, "config", "check", path).CombinedOutput()
			if c.ok {
				if err != nil {
					t.Errorf("config check: %v\n%s", err, out)
				}
				return
			}
			if err == nil || !strings.Contains(string(out), c.key) {
				t.Errorf("config check: %v, want a problem with %s:\n%s", err, c.key, out)
			}
			out, err = exec.Command(bin, "run", "--config", path, "--state-dir", filepath.Join(dir, "state")).CombinedOutput()
			if ee, isExit := err.(*exec.ExitError); !isExit || ee.ExitCode() != 1 || !strings.Contains(string(out), c.key) {
				t.Errorf("run: %v, want exit 1 naming %s:\n%s", err, c.key, out)
			}
		})
	}
}

// `cellagent run` creates its state directory 0700 and its store 0600
// even under a umask that would let everyone read them, and keeps them so
// across a SIGKILL and a restart.
func TestStateDirPrivate(t *testing.T) {
	bin := testBinary(t)
	dir := t.TempDir()
	_, tty := linkedSim(t, dir)
	b := mqtttest.Start(t, mqtttest.Options{})
	tap := tapBroker(t, b.URL(), "", "", "", "cellagent/v1/#")
	state := filepath.Join(dir, "var", "lib", "cellagent")
	cfg := agentConfig(t, dir, "cellagent.toml", map[string][]string{
		"device": {"id = \"gw1\""}, "modem": {"port = " + q(tty)},
		"mqtt":  {"broker = " + q(b.URL()), "allow_plaintext = true"},
		"state": {"dir = " + q(state)},
	})
	check := func(when string) {
		t.Helper()
		if fi, err := os.Stat(state); err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("%s: %s: %v, want mode 0700", when, state, err)
		}
		n := 0
		err := filepath.WalkDir(state, func(path string, e fs.DirEntry, err error) error {
			if err != nil || path == state {
				return err
			}
			fi, err := e.Info()
			if err != nil {
				return err
			}
			n++
			if want := fs.FileMode(0o600); e.IsDir() || fi.Mode().Perm() != want {
				t.Errorf("%s: %s: mode %v, want a file with 0600", when, path, fi.Mode())
			}
			return nil
		})
		if err != nil || n == 0 {
			t.Errorf("%s: %d files in the state directory: %v", when, n, err)
		}
	}
	start := func() *agentProc {
		old := syscall.Umask(0)
		defer syscall.Umask(old)
		return startAgentProc(t, bin, "run", "--config", cfg)
	}
	p := start()
	tap.wait(t, "gw1/status", `"state":"online"`)
	check("first start")
	_ = p.cmd.Process.Kill()
	<-p.done
	tap.forget()
	p = start()
	tap.wait(t, "gw1/status", `"state":"online"`)
	check("after SIGKILL and a restart")
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}
