package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/coreos/go-systemd/v22/daemon"

	"cellagent/agent"
	"cellagent/agent/config"
	"cellagent/agent/memtrim"
)

const defaultConfigPath = "/etc/cellagent/cellagent.toml"

// runFlags override the file; only what a bench or a one-off run needs.
type runFlags struct {
	config, port, stateDir, broker, deviceID, logLevel, runtimeDir string
	baud                                                           int
	plaintext, commands                                            bool
}

func runRun(ctx context.Context, e *env, args []string) error {
	var f runFlags
	fs := newFlags(e, "run", "[--config FILE] [flags]",
		`Run the agent: keep the modem initialised, take incoming SMS off the SIM
into the durable store and publish them, send SMS requested over MQTT,
report registration and signal by exception, and drain gracefully on
SIGTERM. SIGHUP reloads the log level, the telemetry settings and the network
profile ([network]: the modem session restarts to apply it, and a wrong PIN
or APN it fixes is tried again).

Settings come from the file (see 'cellagent config example'); flags override
it. Paths may also come from the environment: CELLAGENT_CONFIG, and systemd's
STATE_DIRECTORY, RUNTIME_DIRECTORY and CREDENTIALS_DIRECTORY.

Examples:
  cellagent run --config /etc/cellagent/cellagent.toml
  cellagent run --port /tmp/ttyBG96 --state-dir /tmp/cellagent --log-level debug`)
	fs.StringVarP(&f.config, "config", "c", "", "configuration file (default $CELLAGENT_CONFIG or "+defaultConfigPath+" if it exists)")
	fs.StringVarP(&f.port, "port", "p", "", "modem AT port, or auto (overrides modem.port)")
	fs.IntVar(&f.baud, "baud", 0, "baud rate (overrides modem.baud)")
	fs.StringVar(&f.stateDir, "state-dir", "", "durable state directory (overrides state.dir and $STATE_DIRECTORY)")
	fs.StringVar(&f.runtimeDir, "runtime-dir", "", "where status.json and the API socket go (default $RUNTIME_DIRECTORY)")
	fs.StringVar(&f.broker, "broker", "", "MQTT broker URL (overrides mqtt.broker)")
	fs.BoolVar(&f.plaintext, "allow-plaintext", false, "allow a tcp:// broker (overrides mqtt.allow_plaintext)")
	fs.BoolVar(&f.commands, "commands", false, "enable MQTT commands (overrides mqtt.commands)")
	fs.StringVar(&f.deviceID, "device-id", "", "device id in topics (overrides device.id)")
	fs.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (overrides log.level)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	path, cfg, err := loadRunConfig(&f, fs.Changed)
	if err != nil {
		return err
	}
	level := new(slog.LevelVar)
	if err := level.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
		return usageError{fmt.Errorf("log level %q: %w", cfg.Log.Level, err)}
	}
	log := serviceLogger(e, level)
	wd, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("ignoring the watchdog settings", "err", err)
	}
	reload := make(chan config.Config, 1)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			_, next, err := loadRunConfig(&f, fs.Changed)
			if err != nil {
				log.Error("reload refused; the running configuration stays", "file", path, "err", err)
				continue
			}
			select {
			case reload <- next:
			case <-ctx.Done():
				return
			}
		}
	}()
	runtimeDir := f.runtimeDir
	if runtimeDir == "" {
		runtimeDir = os.Getenv("RUNTIME_DIRECTORY")
	}
	log.Info("cellagent starting", "version", version, "config", path, "port", cfg.Modem.Port, "state", cfg.State.Dir)
	return agent.Run(ctx, agent.Options{
		Config:     cfg,
		Version:    version,
		Logger:     log,
		Level:      level,
		Notify:     func(state string) { _, _ = daemon.SdNotify(false, state) },
		Watchdog:   wd,
		RuntimeDir: runtimeDir,
		Reload:     reload,
		Clock:      agentClock,
		Trim: func() {
			r, err := memtrim.Trim()
			if err != nil {
				log.Warn("giving memory back to the system", "err", err)
				return
			}
			log.Debug("memory given back to the system", "heap", r.Heap, "executable", r.Executable)
		},

		APIAfterQueued: apiAfterQueued,
	})
}

// loadRunConfig reads the file and applies the environment and the flags
// over it, in that order, then checks the result and the files it names.
func loadRunConfig(f *runFlags, changed func(string) bool) (string, config.Config, error) {
	path, explicit := f.config, f.config != ""
	if path == "" {
		path = os.Getenv("CELLAGENT_CONFIG")
		explicit = path != ""
	}
	if path == "" {
		path = defaultConfigPath
	}
	cfg := config.Default()
	data, err := config.ReadFile(path)
	switch {
	case err == nil:
		if cfg, err = config.Parse(data, path); err != nil {
			return "", cfg, err
		}
	case errors.Is(err, fs.ErrNotExist) && !explicit:
		path = "built-in defaults"
	default:
		return "", cfg, err
	}
	// systemd's StateDirectory= is where the unit may write under
	// ProtectSystem=strict, so it wins over the file.
	if dir, _, _ := strings.Cut(os.Getenv("STATE_DIRECTORY"), ":"); dir != "" {
		cfg.State.Dir = dir
	}
	if changed("port") {
		cfg.Modem.Port = f.port
	}
	if changed("baud") {
		cfg.Modem.Baud = f.baud
	}
	if changed("state-dir") {
		cfg.State.Dir = f.stateDir
	}
	if changed("broker") {
		cfg.MQTT.Broker = f.broker
	}
	if changed("allow-plaintext") {
		cfg.MQTT.AllowPlaintext = f.plaintext
	}
	if changed("commands") {
		cfg.MQTT.Commands = f.commands
	}
	if changed("device-id") {
		cfg.Device.ID = f.deviceID
	}
	if changed("log-level") {
		cfg.Log.Level = f.logLevel
	}
	if ps := cfg.Validate(); len(ps) > 0 {
		return "", cfg, &config.Problems{File: path + " with flags and environment", List: ps}
	}
	if err := config.CheckFiles(cfg, path); err != nil {
		return "", cfg, err
	}
	return path, cfg, nil
}

// serviceLogger logs, under systemd (stderr is the journal's stream), to
// the journal's native socket with priority and fields, or to stderr with
// each line's priority when the socket is out of reach; elsewhere (a
// terminal, a file) to stderr in plain text.
func serviceLogger(e *env, level *slog.LevelVar) *slog.Logger {
	if journalStream(e.stderr) {
		return slog.New(newJournalHandler(e.stderr, level, journalSocketPath))
	}
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
}
