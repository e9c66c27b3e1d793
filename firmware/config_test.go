package firmware

import (
	"os"
	"strings"
	"testing"

	"cellagent/agent/config"
)

// TestDefaultConfig loads the shipped config as the agent does and checks
// it agrees with the unit and the udev rules it is installed with.
func TestDefaultConfig(t *testing.T) {
	cfg, err := config.Load("cellagent.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := config.CheckFiles(cfg, "cellagent.toml"); err != nil {
		t.Fatal(err)
	}
	if cfg.Modem.Port != "/dev/ttyBG96" {
		t.Errorf("modem.port %q: the udev rules name the AT port /dev/ttyBG96", cfg.Modem.Port)
	}
	rules, err := os.ReadFile("99-cellagent-bg96.rules")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rules), `ATTRS{bInterfaceNumber}=="02", SYMLINK+="ttyBG96"`) {
		t.Error(`the rules do not link interface 02 (AT) to ttyBG96`)
	}

	u := unitSettings(t, "cellagent.service")
	if want := "/var/lib/" + strings.Join(u["Service.StateDirectory"], ""); cfg.State.Dir != want {
		t.Errorf("state.dir %q, but the unit's StateDirectory= is %s", cfg.State.Dir, want)
	}
	// An empty broker starts the embedded one on loopback: the service
	// starts before the operator has set the fleet broker, and listens on
	// nothing reachable from outside.
	if cfg.MQTT.Broker != "" || !strings.HasPrefix(cfg.MQTT.EmbeddedListen, "127.0.0.1:") {
		t.Errorf("mqtt.broker %q, embedded_listen %q: want empty and loopback", cfg.MQTT.Broker, cfg.MQTT.EmbeddedListen)
	}
	if cfg.MQTT.Commands {
		t.Error("mqtt.commands is on by default: remote SMS sending must be opted into")
	}
	if cfg.SMSCommands.Enabled {
		t.Error("sms_commands is on by default: commands by SMS must be opted into")
	}
	// The comments tell the operator which credential names to write; they
	// must be the ones the unit loads.
	text, err := os.ReadFile("cellagent.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range u["Service.LoadCredential"] {
		id, path, _ := strings.Cut(v, ":")
		if !strings.Contains(string(text), `password_file = "`+id+`"`) && !strings.Contains(string(text), `key_file = "`+id+`"`) {
			t.Errorf("cellagent.toml never tells the operator to write password_file (or key_file) = %q", id)
		}
		if !strings.Contains(string(text), path) {
			t.Errorf("cellagent.toml never names %s, where the unit loads %s from", path, id)
		}
	}
}
