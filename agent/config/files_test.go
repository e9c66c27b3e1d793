package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A secret others can read is refused with the key that names it and its
// line; the secret itself never appears in the message.
func TestCheckFilesRefusesReadableSecret(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "mqtt.password")
	if err := os.WriteFile(pw, []byte("hunter2-planted\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "gw.toml")
	body := "[mqtt]\nbroker = \"tls://broker.example.com:8883\"\nusername = \"gw1\"\npassword_file = \"" + pw + "\"\nca_file = \"" + filepath.Join(dir, "missing-ca.pem") + "\"\n"
	if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	err = CheckFiles(cfg, cfgPath)
	if err == nil {
		t.Fatal("a world-readable secret was accepted")
	}
	msg := err.Error()
	for _, want := range []string{"line 4: mqtt.password_file:", "line 5: mqtt.ca_file:"} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "hunter2") {
		t.Errorf("the secret leaked into the message:\n%s", msg)
	}
	if err := os.Chmod(pw, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.MQTT.CAFile = ""
	if err := CheckFiles(cfg, cfgPath); err != nil {
		t.Errorf("private secret refused: %v", err)
	}
}
