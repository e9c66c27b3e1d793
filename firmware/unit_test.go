package firmware

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// verifyRoot makes a file system root for systemd-analyze --root: the
// amd64 (native) package unpacked as dpkg would install it, plus the test
// machine's own systemd units (targets and modprobe@.service the unit
// refers to) and kill for ExecReload=. The unit verified is the shipped
// file, in the shipped place, with the shipped binary behind ExecStart.
func verifyRoot(t *testing.T) string {
	t.Helper()
	_, roots := packages(t)
	root := t.TempDir()
	run(t, "", nil, "cp", "-a", roots[nativeArch()]+"/.", root)
	units := "/usr/lib/systemd/system"
	if _, err := os.Stat(units); err != nil {
		units = "/lib/systemd/system"
	}
	if err := os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "", nil, "cp", "-a", units, filepath.Join(root, "usr/lib/systemd/system"))
	kill, err := exec.LookPath("kill")
	if err != nil {
		t.Fatalf("kill (procps) not found: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "", nil, "cp", kill, filepath.Join(root, "bin/kill"))
	return root
}

func TestUnitVerify(t *testing.T) {
	analyze := need(t, "systemd-analyze", "systemd")
	root := verifyRoot(t)

	// systemd-analyze verify exits 0 after some problems (an unknown key
	// is "ignoring"), so any output at all fails the test.
	out, err := runErr("", nil, analyze, "verify", "--root="+root, "cellagent.service")
	if err != nil || out != "" {
		t.Errorf("systemd-analyze verify cellagent.service: %v\n%s", err, out)
	}

	// The same harness must see a problem when there is one: a unit it
	// could not find or read would verify as clean.
	unit, err := os.ReadFile(filepath.Join(root, "lib/systemd/system/cellagent.service"))
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(unit), "UMask=0077\n", "UMask=0077\nNoSuchSetting=yes\n", 1)
	if err := os.WriteFile(filepath.Join(root, "lib/systemd/system/cellagent-canary.service"), []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ = runErr("", nil, analyze, "verify", "--root="+root, "cellagent-canary.service")
	if !strings.Contains(out, "NoSuchSetting") {
		t.Errorf("verify did not report the canary's unknown key: %q", out)
	}

	// A regression guard on the sandbox: systemd rates the unit's exposure
	// 0.0 (locked down) to 10.0 (none). It is 1.7 today; --threshold is
	// that times ten.
	out, err = runErr("", nil, analyze, "security", "--offline=yes", "--threshold=20", "--root="+root, "cellagent.service")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil {
		t.Errorf("systemd-analyze security: %v\n%s", err, out)
	} else {
		t.Log(lines[len(lines)-1])
	}
}

// TestUnitShape checks the settings the rest of the package relies on,
// which systemd would accept in any other form too.
func TestUnitShape(t *testing.T) {
	u := unitSettings(t, "cellagent.service")
	for key, want := range map[string]string{
		"Service.Type":            "notify",
		"Service.ExecStart":       "/usr/bin/cellagent run --config /etc/cellagent/cellagent.toml",
		"Service.ExecReload":      "/bin/kill -HUP $MAINPID",
		"Service.User":            "cellagent",
		"Service.StateDirectory":  "cellagent",
		"Service.WatchdogSec":     "60s",
		"Service.TimeoutStopSec":  "30s",
		"Service.ProtectSystem":   "strict",
		"Service.NoNewPrivileges": "yes",
		"Service.Restart":         "on-failure",
		"Install.WantedBy":        "multi-user.target",
	} {
		if got := u[key]; len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if got := u["Service.CapabilityBoundingSet"]; len(got) != 1 || got[0] != "" {
		t.Errorf("CapabilityBoundingSet = %q, want empty (no capabilities)", got)
	}
	// The modem on USB or on any of the common UARTs, and the GPIO chips.
	allowed := strings.Join(u["Service.DeviceAllow"], ",")
	for _, want := range []string{"char-ttyUSB rw", "char-ttyS rw", "char-ttyAMA rw", "char-ttymxc rw", "char-gpiochip rw"} {
		if !strings.Contains(","+allowed+",", ","+want+",") {
			t.Errorf("DeviceAllow = %q: no %q", allowed, want)
		}
	}
	// PrivateDevices= would hide the modem's tty and the GPIO chips.
	if got := u["Service.PrivateDevices"]; got != nil {
		t.Errorf("PrivateDevices = %q: the agent needs /dev/ttyUSB* and /dev/gpiochip*", got)
	}
	// Every credential loaded from a file that may be absent needs a
	// SetCredential= default, or a gateway without that password configured
	// fails to start.
	set := map[string]bool{}
	for _, v := range u["Service.SetCredential"] {
		id, _, _ := strings.Cut(v, ":")
		set[id] = true
	}
	for _, v := range u["Service.LoadCredential"] {
		id, _, _ := strings.Cut(v, ":")
		if !set[id] {
			t.Errorf("LoadCredential=%s has no SetCredential=%s: default; a missing file would stop the start", v, id)
		}
	}
	if len(u["Service.LoadCredential"]) != 3 {
		t.Errorf("LoadCredential = %q, want bsc-password, mqtt-password and sms-command-key", u["Service.LoadCredential"])
	}
}
