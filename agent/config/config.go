// Package config reads cellagent's TOML configuration strictly: an unknown
// key, a wrong type or an invalid value is a problem reported with its key
// and line, and every problem in a file is reported at once, so an operator
// fixes a config in one round instead of one error per restart.
//
// Secrets never live in the file: it names files (or systemd credentials)
// holding them, read with transport/secret.
package config

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"cellagent/transport/bsc"
	"cellagent/transport/mqtt"
)

// Config is the whole file. Zero sections take the defaults of Default.
type Config struct {
	Device  DeviceConfig  `toml:"device"`
	Modem   ModemConfig   `toml:"modem"`
	Network NetworkConfig `toml:"network"`
	Data    DataConfig    `toml:"data"`
	SMS     SMSConfig     `toml:"sms"`
	// SMSCommands is signed commands by SMS, off by default.
	SMSCommands SMSCommandsConfig `toml:"sms_commands"`
	BSC         BSCConfig         `toml:"bsc"`
	MQTT        MQTTConfig        `toml:"mqtt"`
	Telemetry   TelemetryConfig   `toml:"telemetry"`
	Power       PowerConfig       `toml:"power"`
	Supervisor  SupervisorConfig  `toml:"supervisor"`
	State       StateConfig       `toml:"state"`
	API         APIConfig         `toml:"api"`
	Log         LogConfig         `toml:"log"`
}

// DeviceConfig names the gateway.
type DeviceConfig struct {
	// ID identifies the gateway in telemetry; empty means the SIM's ICCID.
	ID string `toml:"id"`
}

// ModemConfig is the modem's serial port.
type ModemConfig struct {
	// Port is a device path, or "auto" to find the BG96's AT port by its
	// USB ids in sysfs.
	Port string `toml:"port"`
	Baud int    `toml:"baud"`
}

// SMSConfig governs SMS.
type SMSConfig struct {
	// SMSC is the service centre MO messages go through. Empty: the
	// SIM's own (AT+CSCA), right for any operator; Business Smart
	// Connect's SIMs are to send through +882 285 00001 6860, which the
	// package's configuration (firmware/cellagent.toml) names.
	SMSC string `toml:"smsc"`
	// Outgoing limits: SMS costs money and an agent must not become a
	// spam cannon. Zero disables a limit, but one of the global ones
	// (per minute, hour, day) must stay.
	PerMinute         int `toml:"per_minute"`
	PerHour           int `toml:"per_hour"`
	PerDay            int `toml:"per_day"`
	PerDestinationDay int `toml:"per_destination_per_day"`
}

// BSCConfig is the operator's Business Smart Connect API.
type BSCConfig struct {
	BaseURL  string `toml:"base_url"`
	Username string `toml:"username"`
	// PasswordFile holds the API password; a bare name is looked up in
	// $CREDENTIALS_DIRECTORY (systemd LoadCredential=).
	PasswordFile      string   `toml:"password_file"`
	CAFile            string   `toml:"ca_file"`
	ClientCert        string   `toml:"client_cert"`
	ClientKey         string   `toml:"client_key"`
	AllowInsecureHTTP bool     `toml:"allow_insecure_http"`
	Timeout           Duration `toml:"timeout"`
	ICCID             string   `toml:"iccid"`
}

// MQTTConfig is the fleet broker connection.
type MQTTConfig struct {
	// Broker is tls://host:8883 (or ssl://); tcp:// only with
	// AllowPlaintext. Empty starts an embedded broker on EmbeddedListen,
	// for the bench: telemetry then stays on the device.
	Broker         string `toml:"broker"`
	EmbeddedListen string `toml:"embedded_listen"`
	AllowPlaintext bool   `toml:"allow_plaintext"`
	CAFile         string `toml:"ca_file"`
	ClientCert     string `toml:"client_cert"`
	ClientKey      string `toml:"client_key"`
	Username       string `toml:"username"`
	// PasswordFile: a file, or a bare systemd credential name.
	PasswordFile string   `toml:"password_file"`
	Prefix       string   `toml:"prefix"`
	KeepAlive    Duration `toml:"keepalive"`
	TelemetryQoS int      `toml:"telemetry_qos"`
	// Commands enables cmd/sms/send, cmd/status and cmd/recover.
	Commands          bool    `toml:"commands"`
	CommandsPerMinute float64 `toml:"commands_per_minute"`
	// AllowTo, when not empty, lists the only SMS destinations commands
	// may address.
	AllowTo []string `toml:"allow_to"`
}

// TelemetryConfig shapes report-by-exception.
type TelemetryConfig struct {
	// Poll is how often the modem is asked for its state.
	Poll Duration `toml:"poll"`
	// Heartbeat publishes an unchanged sample after this long.
	Heartbeat Duration `toml:"heartbeat"`
	// Dead-bands in dB: a reading must move this far to be reported.
	RSSI float64 `toml:"rssi_db"`
	RSRP float64 `toml:"rsrp_db"`
	RSRQ float64 `toml:"rsrq_db"`
	SINR float64 `toml:"sinr_db"`
}

// PowerConfig names the GPIO lines wired to the modem; empty names skip
// the steps that need them.
type PowerConfig struct {
	PWRKey string `toml:"pwrkey"`
	ResetN string `toml:"reset_n"`
	// Supply switches the modem's power rail, cut only when a graceful
	// power-down failed.
	Supply string `toml:"supply"`
	// Inverted is for boards that drive the lines through an inverting
	// transistor, so a high GPIO pulls the modem's line low.
	Inverted bool `toml:"inverted"`
}

// StateConfig is where durable state lives.
type StateConfig struct {
	Dir string `toml:"dir"`
}

// APIConfig is the local API on a Unix socket, for the CLI and programs on
// the gateway.
type APIConfig struct {
	Enabled bool `toml:"enabled"`
	// Socket is the socket's path; empty means api.sock in the runtime
	// directory ($RUNTIME_DIRECTORY, /run/cellagent under systemd).
	Socket string `toml:"socket"`
	// Group owns the socket (mode 0660); empty keeps the agent's group,
	// cellagent under the packaged unit. Its members may use the API.
	Group string `toml:"group"`
	// ATCommands lets clients send raw AT commands (POST /v1/at).
	ATCommands bool `toml:"at_commands"`
}

// LogConfig sets logging.
type LogConfig struct {
	Level string `toml:"level"`
}

// Duration is a time.Duration written as "15s" or "2m".
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (use e.g. 15s, 2m, 1h)", b)
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Default is the configuration of a gateway with a BG96 on its usual AT
// port and the operator's SMSC.
func Default() Config {
	return Config{
		Modem:       ModemConfig{Port: "/dev/ttyUSB2", Baud: 115200},
		Network:     defaultNetwork(),
		Data:        defaultData(),
		SMS:         SMSConfig{PerMinute: 5, PerHour: 30, PerDay: 100, PerDestinationDay: 50},
		SMSCommands: defaultSMSCommands(),
		BSC:         BSCConfig{Timeout: Duration{15 * time.Second}},
		MQTT: MQTTConfig{
			EmbeddedListen:    "127.0.0.1:1883",
			Prefix:            "cellagent/v1",
			KeepAlive:         Duration{1200 * time.Second},
			CommandsPerMinute: 6,
			AllowTo:           []string{},
		},
		Telemetry: TelemetryConfig{
			Poll:      Duration{60 * time.Second},
			Heartbeat: Duration{30 * time.Minute},
			RSSI:      3, RSRP: 3, RSRQ: 3, SINR: 3,
		},
		Supervisor: defaultSupervisor(),
		State:      StateConfig{Dir: "/var/lib/cellagent"},
		API:        APIConfig{Enabled: true},
		Log:        LogConfig{Level: "info"},
	}
}

// Problem is one thing wrong with a file.
type Problem struct {
	Line int // 0 when the problem has no place in the file
	Key  string
	Msg  string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Key != "" {
		b.WriteString(p.Key + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found in one file.
type Problems struct {
	File string
	List []Problem
}

func (ps *Problems) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d problem(s)", ps.File, len(ps.List))
	for _, p := range ps.List {
		b.WriteString("\n  " + p.String())
	}
	return b.String()
}

// Load reads and checks the file at path.
func Load(path string) (Config, error) {
	data, err := ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	return Parse(data, path)
}

// MaxFileSize bounds a configuration file. A full one with comments is a
// few KiB; anything near this is not a configuration.
const MaxFileSize = 64 << 10

// ReadFile reads a configuration file, refusing what is not a regular file
// or is larger than MaxFileSize: /dev/zero would be read until memory runs
// out, and a FIFO would block, so it is opened without waiting for a
// writer and refused.
func ReadFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("config: %s is not a regular file (%s)", path, fi.Mode().Type())
	}
	if fi.Size() > MaxFileSize {
		return nil, fmt.Errorf("config: %s is %d bytes, more than the %d a configuration may have", path, fi.Size(), MaxFileSize)
	}
	// The size may change between the stat and the read.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("config: %s is more than the %d bytes a configuration may have", path, MaxFileSize)
	}
	return data, nil
}

// Parse reads and checks a file's contents; name is used in messages. On
// problems the error is a *Problems listing all of them.
func Parse(data []byte, name string) (Config, error) {
	cfg := Default()
	ps := &Problems{File: name}
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		// A syntax error leaves no document to check further.
		var de *toml.DecodeError
		if errors.As(err, &de) {
			line, _ := de.Position()
			ps.List = append(ps.List, Problem{Line: line, Key: strings.Join(de.Key(), "."), Msg: strings.TrimPrefix(de.Error(), "toml: ")})
		} else {
			ps.List = append(ps.List, Problem{Msg: err.Error()})
		}
		return Config{}, ps
	}
	var typeProblems []Problem
	decode(reflect.ValueOf(&cfg).Elem(), doc, "", func(key, format string, args ...any) {
		typeProblems = append(typeProblems, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
	})
	lines := keyLines(data)
	for _, p := range append(typeProblems, cfg.Validate()...) {
		p.Line = lines[p.Key]
		ps.List = append(ps.List, p)
	}
	if len(ps.List) > 0 {
		sort.SliceStable(ps.List, func(i, j int) bool { return ps.List[i].Line < ps.List[j].Line })
		return Config{}, ps
	}
	return cfg, nil
}

// Validate checks values that decode fine but make no sense. Problems have
// no line; Parse adds it.
func (c Config) Validate() []Problem {
	var ps []Problem
	bad := func(key, format string, args ...any) {
		ps = append(ps, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if c.Device.ID != "" {
		// It is a topic level: run refuses what a topic cannot carry.
		if err := mqtt.ValidateLevel(c.Device.ID); err != nil {
			bad("device.id", "%q: %v", c.Device.ID, err)
		}
	}
	if c.Modem.Port == "" {
		bad("modem.port", "must be set (a device path such as /dev/ttyUSB2)")
	}
	switch c.Modem.Baud {
	case 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600:
	default:
		bad("modem.baud", "%d is not a baud rate the BG96 supports", c.Modem.Baud)
	}
	for key, v := range map[string]int{"sms.per_minute": c.SMS.PerMinute, "sms.per_hour": c.SMS.PerHour, "sms.per_day": c.SMS.PerDay, "sms.per_destination_per_day": c.SMS.PerDestinationDay} {
		if v < 0 {
			bad(key, "must not be negative (0 disables the limit)")
		}
	}
	if c.SMS.PerMinute <= 0 && c.SMS.PerHour <= 0 && c.SMS.PerDay <= 0 {
		bad("sms.per_day", "at least one of per_minute, per_hour and per_day must be set: SMS cost money")
	}
	if c.SMS.PerDestinationDay > 0 && c.SMS.PerDay <= 0 {
		bad("sms.per_day", "must be set when per_destination_per_day is, so the agent can bound what it remembers")
	}
	if c.BSC.BaseURL != "" {
		u, err := url.Parse(c.BSC.BaseURL)
		switch {
		case err != nil || u.Host == "":
			bad("bsc.base_url", "%q is not an absolute URL", c.BSC.BaseURL)
		case u.Scheme == "http" && !c.BSC.AllowInsecureHTTP && !bsc.IsLoopback(u.Hostname()):
			bad("bsc.base_url", "plain http to %s would send the API password in clear; use https or set allow_insecure_http", u.Hostname())
		case u.Scheme != "http" && u.Scheme != "https":
			bad("bsc.base_url", "scheme %q: want https", u.Scheme)
		}
		if c.BSC.Username == "" {
			bad("bsc.username", "must be set when base_url is")
		}
		if strings.Contains(c.BSC.Username, ":") {
			bad("bsc.username", "must not contain ':' (HTTP Basic authentication separates user and password with it)")
		}
		if c.BSC.PasswordFile == "" {
			bad("bsc.password_file", "must be set when base_url is (a file, or a systemd credential name)")
		}
	}
	if (c.BSC.ClientCert == "") != (c.BSC.ClientKey == "") {
		bad("bsc.client_cert", "client_cert and client_key go together")
	}
	if c.BSC.Timeout.Duration <= 0 {
		bad("bsc.timeout", "must be positive")
	}
	c.Network.validate(bad)
	c.Data.validate(bad)
	c.SMSCommands.validate(bad)
	c.MQTT.validate(bad)
	c.Telemetry.validate(bad)
	c.Power.validate(bad)
	c.Supervisor.validate(bad)
	if c.State.Dir == "" {
		bad("state.dir", "must be set")
	}
	if c.API.Socket != "" && !filepath.IsAbs(c.API.Socket) {
		bad("api.socket", "%q: want an absolute path", c.API.Socket)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Key < ps[j].Key })
	return ps
}

// keyLines maps each dotted key in the document to its line, so checks
// made after decoding can still point at the line to fix.
func keyLines(data []byte) map[string]int {
	lines := map[string]int{}
	var p unstable.Parser
	p.Reset(data)
	var table []string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = keyParts(e.Key())
			// A header's line serves problems about the whole table (an
			// unknown section); its keys' lines are their own.
			if it := e.Key(); it.Next() {
				if key := strings.Join(table, "."); lines[key] == 0 {
					lines[key] = p.Shape(it.Node().Raw).Start.Line
				}
			}
		case unstable.KeyValue:
			it := e.Key()
			var first *unstable.Node
			var parts []string
			for it.Next() {
				n := it.Node()
				if first == nil {
					first = n
				}
				parts = append(parts, string(n.Data))
			}
			if first == nil {
				continue
			}
			key := strings.Join(append(append([]string{}, table...), parts...), ".")
			// Raw, not Data: a quoted key with escapes is unescaped into a
			// new buffer, which Parser.Range cannot place in the input (it
			// panics, as the fuzzer found).
			lines[key] = p.Shape(first.Raw).Start.Line
		}
	}
	return lines
}

func keyParts(it unstable.Iterator) []string {
	var parts []string
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return parts
}
