package config

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"cellagent/transport/secret"
)

// CheckFiles reads the files the configuration names: secrets must be
// readable by the agent and by nobody else, certificates must exist. It is
// separate from Parse because the files are those of the machine the
// agent runs on, not of the one a file is written on; `config check` on
// the gateway and `run` use both.
func CheckFiles(c Config, path string) error {
	var ps []Problem
	bad := func(key, format string, args ...any) {
		ps = append(ps, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	for key, name := range map[string]string{"bsc.password_file": c.BSC.PasswordFile, "mqtt.password_file": c.MQTT.PasswordFile, "sms_commands.key_file": c.SMSCommands.KeyFile} {
		// A bare credential name exists only inside the service, where
		// systemd sets CREDENTIALS_DIRECTORY; elsewhere it is checked at
		// start.
		if name == "" || (!strings.Contains(name, "/") && os.Getenv("CREDENTIALS_DIRECTORY") == "") {
			continue
		}
		if _, err := secret.Read(name); err != nil {
			bad(key, "%v", err)
		}
	}
	for key, name := range map[string]string{
		"bsc.ca_file": c.BSC.CAFile, "bsc.client_cert": c.BSC.ClientCert, "bsc.client_key": c.BSC.ClientKey,
		"mqtt.ca_file": c.MQTT.CAFile, "mqtt.client_cert": c.MQTT.ClientCert, "mqtt.client_key": c.MQTT.ClientKey,
	} {
		if name == "" {
			continue
		}
		if _, err := os.Stat(name); err != nil {
			bad(key, "%v", err)
		}
	}
	if len(ps) == 0 {
		return nil
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Key < ps[j].Key })
	if data, err := ReadFile(path); err == nil {
		lines := keyLines(data)
		for i := range ps {
			ps[i].Line = lines[ps[i].Key]
		}
	}
	return &Problems{File: path, List: ps}
}
