package config

import (
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"cellagent/transport/mqtt"
	"cellagent/transport/mqtt/embedded"
)

type badFunc func(key, format string, args ...any)

func (m MQTTConfig) validate(bad badFunc) {
	if m.Broker == "" {
		if _, _, err := net.SplitHostPort(m.EmbeddedListen); err != nil {
			bad("mqtt.embedded_listen", "%q is not host:port", m.EmbeddedListen)
		} else if err := embedded.CheckAddr(m.EmbeddedListen); err != nil {
			bad("mqtt.embedded_listen", "%v", err)
		}
	} else {
		u, err := url.Parse(m.Broker)
		switch {
		case err != nil || u.Host == "":
			bad("mqtt.broker", "%q is not a broker URL (tls://host:8883)", m.Broker)
		case u.Scheme == "tcp" && !m.AllowPlaintext:
			bad("mqtt.broker", "%s sends the password and SMS content in clear; use tls:// or set allow_plaintext", u.Scheme)
		case u.Scheme != "tcp" && u.Scheme != "tls" && u.Scheme != "ssl":
			bad("mqtt.broker", "scheme %q: want tls://, ssl:// or (with allow_plaintext) tcp://", u.Scheme)
		default:
			// What the client itself refuses (credentials or a path in
			// the URL, TLS files for tcp://): run and check must agree.
			conn := mqtt.Conn{Broker: m.Broker, AllowPlaintext: m.AllowPlaintext,
				CAFile: m.CAFile, CertFile: m.ClientCert, KeyFile: m.ClientKey, KeepAlive: time.Minute}
			if err := conn.Validate(); err != nil {
				bad("mqtt.broker", "%s", strings.TrimPrefix(err.Error(), "mqtt: config: "))
			}
		}
	}
	if m.Broker == "" && m.Commands && m.PasswordFile == "" {
		// Commands send SMS, which cost money and reach people; an
		// embedded broker without a user admits every local process.
		bad("mqtt.commands", "on the embedded broker (no mqtt.broker) commands need mqtt.username and mqtt.password_file, which it then requires of every client")
	}
	if (m.ClientCert == "") != (m.ClientKey == "") {
		bad("mqtt.client_cert", "client_cert and client_key go together")
	}
	if m.PasswordFile != "" && m.Username == "" {
		bad("mqtt.username", "must be set when password_file is")
	}
	if err := mqtt.ValidatePrefix(m.Prefix); err != nil {
		bad("mqtt.prefix", "%v: want topic levels without wildcards, $ or empty levels (e.g. cellagent/v1)", err)
	}
	if m.KeepAlive.Duration < 10*time.Second || m.KeepAlive.Duration > 1200*time.Second {
		bad("mqtt.keepalive", "%s: want 10s to 20m (brokers cap it at 1200 s; each ping costs cellular bytes)", m.KeepAlive.Duration)
	}
	if m.TelemetryQoS != 0 && m.TelemetryQoS != 1 {
		bad("mqtt.telemetry_qos", "%d: want 0 or 1", m.TelemetryQoS)
	}
	if m.CommandsPerMinute <= 0 || m.CommandsPerMinute > 600 {
		bad("mqtt.commands_per_minute", "%g: want more than 0 and at most 600", m.CommandsPerMinute)
	}
	for _, to := range m.AllowTo {
		if !phone.MatchString(to) {
			bad("mqtt.allow_to", "%q is not a phone number (digits, optional leading +)", to)
		}
	}
}

var phone = regexp.MustCompile(`^\+?[0-9]{1,20}$`)

func (t TelemetryConfig) validate(bad badFunc) {
	if t.Poll.Duration < time.Second {
		bad("telemetry.poll", "%s: want at least 1s", t.Poll.Duration)
	}
	if t.Heartbeat.Duration < 0 || (t.Heartbeat.Duration > 0 && t.Heartbeat.Duration < t.Poll.Duration) {
		bad("telemetry.heartbeat", "%s: want 0 (off) or at least the poll interval", t.Heartbeat.Duration)
	}
}

var pinName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,32}$`)

func (p PowerConfig) validate(bad badFunc) {
	seen := map[string]string{}
	for key, name := range map[string]string{"power.pwrkey": p.PWRKey, "power.reset_n": p.ResetN, "power.supply": p.Supply} {
		if name == "" {
			continue
		}
		if !pinName.MatchString(name) {
			bad(key, "%q is not a GPIO name (e.g. GPIO17)", name)
			continue
		}
		if other, ok := seen[name]; ok {
			a, b := min(key, other), max(key, other)
			bad(b, "uses the same pin %s as %s", name, a)
		}
		seen[name] = key
	}
}
