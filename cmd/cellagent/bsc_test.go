package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"cellagent/transport/bsc"
	"cellagent/transport/bsc/bscemu"
	"cellagent/transport/bsc/bscemu/bscemutest"
	"cellagent/transport/secret/secrettest"
)

const (
	testICCID  = "89882280666012345678"
	otherICCID = "8988228066601234567"
	testPW     = "bench-secret"
)

// platform runs a BSC simulator on loopback for the CLI to call.
func platform(t *testing.T) *bscemu.Server {
	t.Helper()
	return bscemutest.Start(t, bscemu.Config{
		Users: map[string]string{"admin": testPW},
		SIMs:  []bscemu.SIMConfig{{ICCID: testICCID, DataBytes: 10 << 20, SMS: 50}, {ICCID: otherICCID}},
	}, nil)
}

// bscConfig writes a password file and a config whose [bsc] section has
// base_url, username and password_file plus the extra lines.
func bscConfig(t *testing.T, base, password string, extra ...string) string {
	t.Helper()
	dir := t.TempDir()
	pw := secrettest.WriteFile(t, dir, "pw", password+"\n", 0o600)
	body := fmt.Sprintf("[bsc]\nbase_url = %q\nusername = \"admin\"\npassword_file = %q\n%s\n", base, pw, strings.Join(extra, "\n"))
	return secrettest.WriteFile(t, dir, "cellagent.toml", body, 0o644)
}

func TestBSCQuota(t *testing.T) {
	srv := platform(t)
	if err := srv.UseData(testICCID, 4<<20); err != nil {
		t.Fatal(err)
	}
	cfg := bscConfig(t, srv.URL(), testPW, fmt.Sprintf("iccid = %q", testICCID))
	o := cli(t, "", "bsc", "quota", "--config", cfg)
	if o.code != 0 {
		t.Fatalf("code %d stdout %q stderr %q", o.code, o.stdout, o.stderr)
	}
	for _, want := range []string{
		"SIM " + testICCID + "\n",
		"data  ACTIVE  6.0 MiB of 10.0 MiB left (40.0% used), expires ",
		"sms   ACTIVE  50 of 50 sms left (0.0% used)",
		"data thresholds: notify 80%, throttle 95%, hard limit 100%",
	} {
		if !strings.Contains(o.stdout, want) {
			t.Errorf("quota output lacks %q:\n%s", want, o.stdout)
		}
	}

	o = cli(t, "", "bsc", "quota", "--config", cfg, "--iccid", otherICCID, "--json")
	var got struct {
		ICCID     string
		Data, SMS bsc.Quota
	}
	if err := json.Unmarshal([]byte(o.stdout), &got); err != nil || o.code != 0 {
		t.Fatalf("json: %v, code %d stdout %q stderr %q", err, o.code, o.stdout, o.stderr)
	}
	if got.ICCID != otherICCID || got.Data.Total != 500<<20 || got.SMS.Unit != "sms" || got.SMS.Remaining != 250 {
		t.Errorf("json quota %+v", got)
	}
	if o.stderr != "" {
		t.Errorf("stderr without --verbose: %q", o.stderr)
	}

	// --verbose shows the audit lines, never the password or the token.
	o = cli(t, "", "bsc", "quota", "--config", cfg, "-v")
	if o.code != 0 || !strings.Contains(o.stderr, "/quota/data") || strings.Contains(o.stderr, testPW) {
		t.Errorf("verbose: code %d stderr %q", o.code, o.stderr)
	}
	if regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-`).MatchString(o.stderr) {
		t.Errorf("a token-shaped UUID in the audit lines: %q", o.stderr)
	}
}

func TestBSCReset(t *testing.T) {
	srv := platform(t)
	cfg := bscConfig(t, srv.URL(), testPW)
	o := cli(t, "", "bsc", "reset", "--config", cfg, "--iccid", testICCID)
	if o.code != 0 {
		t.Fatalf("code %d stdout %q stderr %q", o.code, o.stdout, o.stderr)
	}
	if !regexp.MustCompile(`^reset of SIM `+testICCID+` queued \(request \d+, status QUEUED, requested 20\d\d-`).MatchString(o.stdout) ||
		!strings.Contains(o.stdout, "queued only") {
		t.Errorf("stdout %q", o.stdout)
	}
	if st, _ := srv.SIM(testICCID); st.ResetCount != 1 {
		t.Errorf("platform counted %d resets, want 1", st.ResetCount)
	}

	// The README documents --json: it prints the queued request.
	o = cli(t, "", "bsc", "reset", "--config", cfg, "--iccid", testICCID, "--json")
	var r resetJSON
	if err := strictJSON(o.stdout, &r); o.code != 0 || err != nil || r.ICCID != testICCID || r.Status != "QUEUED" || r.ID == "" || r.RequestedAt.IsZero() {
		t.Errorf("--json: code %d err %v stdout %q stderr %q", o.code, err, o.stdout, o.stderr)
	}
}

func TestBSCErrors(t *testing.T) {
	srv := platform(t)
	good := bscConfig(t, srv.URL(), testPW, fmt.Sprintf("iccid = %q", testICCID))
	dir := t.TempDir()
	openPW := secrettest.WriteFile(t, dir, "pw-open", testPW, 0o644)
	cases := []struct {
		name  string
		args  []string
		fault *bscemu.Fault
		code  int
		want  string
	}{
		{"no subcommand", []string{"bsc"}, nil, 2, "missing subcommand"},
		{"bad subcommand", []string{"bsc", "fly"}, nil, 2, `unknown subcommand "fly"`},
		{"bad credentials", []string{"bsc", "quota", "--config", bscConfig(t, srv.URL(), "wrong", "iccid = \""+testICCID+"\"")}, nil, 1,
			`access refused for user "admin" (bsc.username in `},
		{"unknown ICCID", []string{"bsc", "quota", "--config", good, "--iccid", "89882280666099999999"}, nil, 1,
			"the platform knows no SIM 89882280666099999999 in this account"},
		{"invalid ICCID", []string{"bsc", "reset", "--config", good, "--iccid", "1234"}, nil, 2, `invalid ICCID "1234"`},
		{"throttled", []string{"bsc", "quota", "--config", good}, &bscemu.Fault{Kind: bscemu.FaultThrottle, RetryAfter: "120", Count: 10}, 1,
			"throttled by the platform (429), retry after 2m0s"},
		{"reset throttled", []string{"bsc", "reset", "--config", good}, &bscemu.Fault{Kind: bscemu.FaultThrottle, RetryAfter: "300", Count: 10}, 1,
			"retry after 5m0s"},
		{"missing ICCID", []string{"bsc", "quota", "--config", bscConfig(t, srv.URL(), testPW)}, nil, 2, "no ICCID: give --iccid or set iccid in the [bsc] section"},
		{"missing config", []string{"bsc", "quota", "--config", filepath.Join(dir, "nope.toml")}, nil, 1, "give the configuration file with --config"},
		{"config problems", []string{"bsc", "quota", "--config", secrettest.WriteFile(t, dir, "bad.toml", "[bsc]\nbase_url = \"ftp://x\"\nusername = \"admin\"\ntimeut = \"1s\"\n", 0o644)}, nil, 1,
			"invalid configuration: "},
		{"not configured", []string{"bsc", "reset", "--config", secrettest.WriteFile(t, dir, "empty.toml", "", 0o644), "--iccid", testICCID}, nil, 1,
			"the BSC API is not configured"},
		{"password file readable by others", []string{"bsc", "quota", "--config",
			secrettest.WriteFile(t, dir, "open.toml", fmt.Sprintf("[bsc]\nbase_url = %q\nusername = \"admin\"\npassword_file = %q\n", srv.URL(), openPW), 0o644), "--iccid", testICCID}, nil, 1,
			"chmod 600"},
		{"unreachable", []string{"bsc", "quota", "--config", bscConfig(t, "http://127.0.0.1:1", testPW), "--iccid", testICCID}, nil, 1,
			"cannot reach the BSC API at http://127.0.0.1:1"},
		{"sms unreachable", []string{"bsc", "sms", "send", "--text", "hi", "--config", bscConfig(t, "http://127.0.0.1:1", testPW), "--iccid", testICCID}, nil, 1,
			"cannot reach the BSC API at http://127.0.0.1:1"},
		{"sms throttled", []string{"bsc", "sms", "send", "--text", "hi", "--config", good}, &bscemu.Fault{Kind: bscemu.FaultThrottle, RetryAfter: "60", Count: 10}, 1,
			"retry after 1m0s"},
		{"sms bad timeout", []string{"bsc", "sms", "send", "--text", "hi", "--config", good, "--timeout", "0s"}, nil, 2,
			"--timeout 0s: want a positive duration"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv.ClearFaults()
			if c.fault != nil {
				srv.InjectFault(*c.fault)
			}
			o := cli(t, "", c.args...)
			if o.code != c.code || !strings.Contains(o.stderr, c.want) {
				t.Errorf("code %d (want %d) stderr %q, want %q", o.code, c.code, o.stderr, c.want)
			}
			if strings.Contains(o.stderr, testPW) || strings.Contains(o.stdout, testPW) {
				t.Errorf("the password leaked: %q %q", o.stdout, o.stderr)
			}
		})
	}
	o := cli(t, "", "bsc", "quota", "--config", bscConfig(t, srv.URL(), "wrong", "iccid = \""+testICCID+"\""))
	if !strings.Contains(o.stderr, "portal administrator") {
		t.Errorf("bad credentials do not say who has API access: %q", o.stderr)
	}
	o = cli(t, "", "bsc", "quota", "--config", secrettest.WriteFile(t, dir, "bad2.toml", "[bsc]\nbase_url = \"ftp://x\"\nusername = \"admin\"\n", 0o644), "--iccid", testICCID)
	for _, want := range []string{"bsc.base_url", "bsc.password_file"} {
		if !strings.Contains(o.stderr, want) {
			t.Errorf("config problems do not name %s: %q", want, o.stderr)
		}
	}
}

// TestBSCSim runs `cellbench platform` with a modem the way a bench user does, over
// TLS with the printed certificate, and drives it with the other commands.
func TestBSCSim(t *testing.T) {
	dir := t.TempDir()
	pw := secrettest.WriteFile(t, dir, "pw", testPW, 0o600)
	link, caFile := filepath.Join(dir, "ttyBG96"), filepath.Join(dir, "ca.pem")
	mo := make(chan map[string]any, 8)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v map[string]any
		if err := json.NewDecoder(r.Body).Decode(&v); err != nil {
			t.Errorf("application: %v", err)
		}
		if r.Method == http.MethodPost {
			mo <- v
		}
	}))
	defer app.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb lockedBuffer
	platformCmd := exec.CommandContext(ctx, benchBinary(t),
		"platform", "--listen", "127.0.0.1:0", "--tls", "--ca-out", caFile, "--user", "admin:"+pw,
		"--sim", testICCID+",msisdn=882285100012345", "--app-url", app.URL, "--modem-symlink", link, "--reset-delay", "50ms")
	platformCmd.Stdout, platformCmd.Stderr = &out, &errb
	if err := platformCmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		_ = platformCmd.Wait()
		done <- platformCmd.ProcessState.ExitCode()
	}()
	stop := func() { _ = platformCmd.Process.Signal(os.Interrupt) }
	defer stop()
	for !strings.Contains(out.String(), "Ctrl-C to stop") {
		select {
		case code := <-done:
			t.Fatalf("platform ended (%d): stdout %q stderr %q", code, out.String(), errb.String())
		case <-ctx.Done():
			t.Fatalf("platform did not start: %q", out.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	base := regexp.MustCompile(`at (https://127\.0\.0\.1:\d+) `).FindStringSubmatch(out.String())
	if base == nil || !strings.Contains(out.String(), "certificate written to "+caFile) || !strings.Contains(out.String(), "(symlink "+link+")") {
		t.Fatalf("start-up output %q", out.String())
	}
	cfg := bscConfig(t, base[1], testPW, fmt.Sprintf("iccid = %q\nca_file = %q", testICCID, caFile))

	if o := cli(t, "", "bsc", "quota", "--config", cfg); o.code != 0 || !strings.Contains(o.stdout, "500.0 MiB of 500.0 MiB left") {
		t.Fatalf("quota over TLS: code %d stdout %q stderr %q", o.code, o.stdout, o.stderr)
	}

	// MT: the platform API to the modem, read with `sms list`.
	client, err := bsc.New(bsc.Config{BaseURL: base[1], Username: "admin", Password: testPW, CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.SendSMS(ctx, testICCID, bsc.MTSMS{Payload: "hello modem", SourceAddress: "+491701234567"}); err != nil {
		t.Fatal(err)
	}
	var o outcome
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if o = cli(t, "", "sms", "list", "--port", link); strings.Contains(o.stdout, "hello modem") {
			break
		}
	}
	if !strings.Contains(o.stdout, "text   hello modem") || !strings.Contains(o.stdout, "from   +491701234567") {
		t.Fatalf("MT SMS not on the modem: %q %q", o.stdout, o.stderr)
	}

	// MO: `sms send` on the modem, forwarded to the application.
	if o := cli(t, "", "sms", "send", "--port", link, "--to", "5432145", "--text", "hello app"); o.code != 0 {
		t.Fatalf("sms send: %q %q", o.stdout, o.stderr)
	}
	select {
	case v := <-mo:
		ep, _ := v["endpoint"].(map[string]any)
		if v["payload"] != "hello app" || v["dest_address"] != "5432145" || v["source_address"] != "882285100012345" || ep["name"] != testICCID || v["dcs"] != 0.0 {
			t.Errorf("forwarded MO %v", v)
		}
	case <-ctx.Done():
		t.Fatal("MO SMS never reached the application")
	}

	// Reset: the modem drops to searching, then registers again.
	if o := cli(t, "", "bsc", "reset", "--config", cfg); o.code != 0 {
		t.Fatalf("reset: %q %q", o.stdout, o.stderr)
	}
	waitCEREG := func(want string) {
		t.Helper()
		var o outcome
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if o = cli(t, "", "at", "--port", link, "AT+CEREG?"); strings.HasPrefix(o.stdout, want) {
				return
			}
		}
		t.Fatalf("modem never answered %q: %q %q", want, o.stdout, o.stderr)
	}
	waitCEREG("+CEREG: 0,2\n")
	waitCEREG("+CEREG: 0,1\n")

	stop()
	if code := <-done; code != 0 {
		t.Errorf("platform exit code %d, stderr %q", code, errb.String())
	}
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Errorf("modem symlink left behind: %v", err)
	}
	if b, err := os.ReadFile(caFile); err != nil || !bytes.HasPrefix(b, []byte("-----BEGIN CERTIFICATE-----")) {
		t.Errorf("--ca-out file: %v %q", err, b)
	}
}
