package config

import "time"

// SMSCommandsConfig enables signed commands by SMS (transport/smscmd),
// for when the data path is down but the modem still gets SMS.
type SMSCommandsConfig struct {
	Enabled bool `toml:"enabled"`
	// KeyFile holds this device's key, hex, 32 to 64 bytes; a bare name
	// is a systemd credential.
	KeyFile string `toml:"key_file"`
	// AllowFrom lists the only originators whose commands are
	// considered; the fleet's sender numbers, as the modem reports them.
	AllowFrom []string `toml:"allow_from"`
	// EventEvery bounds the events about refused commands to one per
	// period, so a flood of forgeries cannot flood the queue.
	EventEvery Duration `toml:"event_every"`
}

func defaultSMSCommands() SMSCommandsConfig {
	return SMSCommandsConfig{AllowFrom: []string{}, EventEvery: Duration{10 * time.Minute}}
}

func (s SMSCommandsConfig) validate(bad badFunc) {
	for _, f := range s.AllowFrom {
		if !phone.MatchString(f) {
			bad("sms_commands.allow_from", "%q is not a phone number (digits, optional leading +)", f)
		}
	}
	if s.EventEvery.Duration < time.Second {
		bad("sms_commands.event_every", "%s: want at least 1s", s.EventEvery.Duration)
	}
	if !s.Enabled {
		return
	}
	if s.KeyFile == "" {
		bad("sms_commands.key_file", "must be set when enabled (a file, or a systemd credential name)")
	}
	if len(s.AllowFrom) == 0 {
		bad("sms_commands.allow_from", "must list the fleet's sender numbers when enabled")
	}
}
