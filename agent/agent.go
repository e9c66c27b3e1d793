// Package agent is the daemon behind `cellagent run`: it wires the modem
// session, the SMS inbox and outbox, the telemetry loop and the MQTT client
// around one durable store, and drains them in order on shutdown.
//
// Data flows one way through the store: MT messages are committed before
// they leave the SIM and published from the store; MO requests are
// committed before they are acknowledged and their outcomes are journalled
// in the same transactions; events and telemetry wait in the store's
// queues while the broker is unreachable.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"cellagent/agent/atsession"
	"cellagent/agent/config"
	"cellagent/agent/event"
	"cellagent/agent/messaging"
	"cellagent/agent/ratelimit"
	"cellagent/agent/store"
	"cellagent/agent/supervisor"
	"cellagent/modem/at"
	"cellagent/modem/bg96"
	"cellagent/modem/clock"
	"cellagent/modem/port"
	"cellagent/transport/localapi"
	"cellagent/transport/mqtt"
	"cellagent/transport/mqtt/embedded"
	"cellagent/transport/secret"
)

// Options configure a daemon run; Config is the only required field.
type Options struct {
	Config  config.Config
	Version string
	Logger  *slog.Logger
	// Level, when set, is the logger's level; Reload changes it.
	Level *slog.LevelVar
	// Notify receives service-manager notifications (READY=1,
	// STOPPING=1, WATCHDOG=1, STATUS=…); nil drops them.
	Notify func(state string)
	// Watchdog is the service manager's watchdog interval; 0 disables the
	// pings.
	Watchdog time.Duration
	// RuntimeDir receives status.json for `cellagent status`; empty
	// writes none.
	RuntimeDir string
	// Reload delivers new configurations (SIGHUP); see applyReload for
	// what changes live.
	Reload <-chan config.Config
	// OpenPort opens the modem's port; default the session keeper's (port.Open).
	OpenPort func(path string, baud int) (io.ReadWriteCloser, error)
	// Dial opens the broker connection; a byte-counting relay hooks in
	// here.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// ReadyTimeout bounds how long readiness waits for the modem: a
	// service whose modem is dead must still come up, or nothing would
	// be left to recover it (default 60 s; the unit's TimeoutStartSec
	// must be longer).
	ReadyTimeout time.Duration
	// DrainTimeout bounds the graceful part of a shutdown (default 10 s).
	DrainTimeout time.Duration
	// StoreCheck is how often the store's path is compared with the file
	// the store has open (default 15 s); see store.ErrGone.
	StoreCheck time.Duration
	// Clock is the daemon's wall and policy time (clock.System when nil).
	Clock clock.Clock
	// Trim, when set, is called every minute to give memory the process
	// no longer uses back to the system (memtrim.Trim in the daemon). A
	// process that runs many agents leaves it nil.
	Trim func()
	// APIAfterQueued, when set, runs between an SMS from the local API
	// reaching the disk and the client hearing so (a test hook).
	APIAfterQueued func()
}

// StoreFile is the store's name inside the state directory.
const StoreFile = "cellagent.db"

// Run runs the daemon until ctx ends, then drains: the SMS in flight is
// finished, queued records stay on disk, and the broker hears `offline`.
func Run(ctx context.Context, o Options) error {
	return newDaemon(o).run(ctx)
}

type daemon struct {
	o     Options
	cfg   config.Config
	log   *slog.Logger
	clock clock.Clock
	now   func() time.Time // clock.Now, for the parts that take a func

	st     *store.Store
	feed   *feed
	keeper *atsession.Keeper
	outbox *messaging.Outbox
	client *mqtt.Client
	broker *embedded.Broker
	sup    *supervisor.Supervisor
	data   *dataPath
	// smsCmds is nil unless [sms_commands] is enabled.
	smsCmds *smsCommands

	started  time.Time
	tele     atomic.Pointer[teleSettings]
	kickTele chan struct{}
	results  chan struct{}
	// dirty asks the main loop to rewrite the status file: every state
	// change does, so `cellagent status` never shows a stale session.
	dirty chan struct{}
	beat  atomic.Int64 // unix ns of the telemetry loop's last round

	mu       sync.Mutex
	pending  []event.Event // raised before the MQTT client existed
	ident    mqtt.Identity // for the birth: the last session's, else the stored one
	deviceID string
	lastErr  string
	modem    *bg96.Status
	modemAt  time.Time
	simSMSC  string // the SIM's service centre, read in session smscSeq
	smscSeq  int
}

type teleSettings struct {
	poll time.Duration
	db   deadBands
}

func newDaemon(o Options) *daemon {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Notify == nil {
		o.Notify = func(string) {}
	}
	if o.Clock == nil {
		o.Clock = clock.System
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 60 * time.Second
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 10 * time.Second
	}
	if o.StoreCheck <= 0 {
		o.StoreCheck = 15 * time.Second
	}
	d := &daemon{o: o, cfg: o.Config, log: o.Logger, clock: o.Clock, now: o.Clock.Now,
		kickTele: make(chan struct{}, 1), results: make(chan struct{}, 1), dirty: make(chan struct{}, 1)}
	d.tele.Store(teleOf(o.Config.Telemetry))
	d.data = newDataPath(d)
	return d
}

func teleOf(c config.TelemetryConfig) *teleSettings {
	return &teleSettings{poll: c.Poll.Duration, db: deadBands{
		RSSI: c.RSSI, RSRP: c.RSRP, RSRQ: c.RSRQ, SINR: c.SINR, Heartbeat: c.Heartbeat.Duration,
	}}
}

func (d *daemon) run(ctx context.Context) (err error) {
	d.started = d.now()
	d.o.Notify("STATUS=opening the store")
	path := filepath.Join(d.cfg.State.Dir, StoreFile)
	d.st, err = store.Open(path, store.Options{
		Logger: d.log, Clock: d.clock, OnResult: func() { kick(d.results) }, OutboxGroup: messaging.Destination,
	})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := d.st.Close(); err == nil {
			err = cerr
		}
	}()
	d.feed = newFeed(d.st.Feed())

	d.ident = d.storedIdentity()

	// Components are started in dependency order and stopped in reverse,
	// each with its own context, so that on shutdown the outbox can finish
	// its SMS while the link is still up, and the MQTT client publishes
	// what the others queued before it says offline.
	linkCtx, stopLink := context.WithCancel(context.WithoutCancel(ctx))
	var linkDone sync.WaitGroup
	defer func() {
		stopLink()
		linkDone.Wait()
	}()
	d.startLink(linkCtx, &linkDone)

	id, err := d.resolveDeviceID(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	d.deviceID = id

	lim, err := ratelimit.New(messaging.Limits(d.cfg.SMS), d.clock)
	if err != nil {
		return fmt.Errorf("agent: sms limits: %w", err)
	}
	d.outbox, err = messaging.NewOutbox(linkPort{d.keeper}, messaging.OutboxConfig{
		Store: d.st, Limiter: lim, SMSC: d.cfg.SMS.SMSC, Logger: d.log, Clock: d.clock,
	})
	if err != nil {
		return err
	}

	if _, err = d.data.newBearer(); err != nil {
		return err
	}
	if d.sup, err = d.newSupervisor(); err != nil {
		return err
	}
	if d.smsCmds, err = d.newSMSCommands(); err != nil {
		return err
	}

	mqttCtx, stopMQTT := context.WithCancel(context.WithoutCancel(ctx))
	defer stopMQTT()
	defer func() {
		if d.broker != nil {
			d.broker.Close()
		}
	}()
	mqttDone, err := d.startMQTT(mqttCtx)
	if err != nil {
		return err
	}

	outCtx, stopOut := context.WithCancel(context.WithoutCancel(ctx))
	defer stopOut()
	outDone, outStop := make(chan struct{}), make(chan struct{})
	go func() { defer close(outDone); d.runOutbox(outCtx, outStop) }()

	work, stopWork := context.WithCancel(ctx)
	defer stopWork()
	var wg sync.WaitGroup
	for _, f := range []func(context.Context){d.runInbox, d.runResults, d.runTelemetry, d.runSupervisor, d.runHousekeeping, d.data.runBearer} {
		wg.Add(1)
		go func() { defer wg.Done(); f(work) }()
	}

	apiCtx, stopAPI := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAPI()
	apiDone, err := d.startAPI(apiCtx)
	if err != nil {
		return err
	}

	loopErr := d.mainLoop(ctx)

	// Drain, within DrainTimeout: no new intake, the SMS in flight is
	// finished, the journal is handed to MQTT, then the link closes and
	// MQTT publishes what is queued, says offline and disconnects.
	d.o.Notify("STOPPING=1")
	d.log.Info("agent: shutting down")
	drain, stopDrain := context.WithTimeout(context.Background(), d.o.DrainTimeout)
	defer stopDrain()
	stopAPI()
	<-apiDone
	stopWork()
	close(outStop)
	d.outbox.Stop()
	select {
	case <-outDone:
	case <-drain.Done():
		d.log.Warn("agent: SMS in flight not finished within the drain time; it stays queued", "drain", d.o.DrainTimeout)
		stopOut()
		<-outDone
	}
	wg.Wait()
	_ = d.reportResults() // what is left stays in the journal for the next start
	stopLink()
	stopMQTT()
	select {
	case <-mqttDone:
	case <-drain.Done():
		d.log.Warn("agent: broker did not confirm offline within the drain time; the last will covers it")
	}
	d.log.Info("agent: stopped")
	return loopErr
}

// mainLoop pings the watchdog while the agent makes progress, writes the
// status file and applies reloads, until ctx ends; or until the store's
// file is deleted, which it returns as an error so that the service exits
// non-zero after its drain and systemd restarts it with a fresh store.
func (d *daemon) mainLoop(ctx context.Context) error {
	// Readiness is looked at when the session changes and when the
	// timeout, counted from the start, passes: resolving the device id
	// may have used it up already.
	timeout := time.NewTimer(max(0, d.o.ReadyTimeout-d.now().Sub(d.started)))
	defer timeout.Stop()
	ready := false
	checkReady := func(timedOut bool) {
		if ready {
			return
		}
		var status string
		if status, ready = readiness(d.keeper.Snapshot(), timedOut); ready {
			d.o.Notify("READY=1\nSTATUS=" + status)
			d.log.Info("agent: ready", "device", d.deviceID, "status", status)
		}
	}
	checkReady(false)
	// The tick serves the watchdog and the status file; with neither it
	// would only wake the CPU.
	var tickC <-chan time.Time
	if d.o.Watchdog > 0 || d.o.RuntimeDir != "" {
		every := 15 * time.Second
		if d.o.Watchdog > 0 {
			every = min(every, d.o.Watchdog/3)
		}
		tick := time.NewTicker(every)
		defer tick.Stop()
		tickC = tick.C
	}
	storeCheck := time.NewTicker(d.o.StoreCheck)
	defer storeCheck.Stop()
	changed := d.keeper.Changed()
	d.writeStatus()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-storeCheck.C:
			if err := d.st.CheckFile(); errors.Is(err, store.ErrGone) {
				d.log.Error("agent: the state directory was deleted or replaced; stopping so the service restarts with a fresh store", "err", err)
				return err
			}
		case <-changed:
			changed = d.keeper.Changed()
			checkReady(false)
			d.writeStatus()
		case <-d.dirty:
			d.writeStatus()
		case <-timeout.C:
			checkReady(true)
		case c := <-d.o.Reload:
			d.applyReload(c)
		case <-tickC:
			if d.o.Watchdog > 0 && d.progressing() {
				d.o.Notify("WATCHDOG=1")
			}
			d.writeStatus()
		}
	}
}

// readiness says whether the service is ready and what to tell the
// service manager: at the first session up, or once ReadyTimeout has
// passed, as a service whose modem is dead must still come up, or
// nothing would be left to recover it.
func readiness(s atsession.Snapshot, timedOut bool) (status string, ready bool) {
	switch {
	case s.Phase == atsession.Up:
		return "modem initialised", true
	case timedOut:
		return fmt.Sprintf("modem not up yet (%s); recovering", s.Phase), true
	}
	return "", false
}

// progressing says whether the telemetry loop, which touches the modem,
// the store and the MQTT queues every round, has completed one recently.
// A hung component stops it, the pings stop, and systemd restarts us.
func (d *daemon) progressing() bool {
	last := time.Unix(0, d.beat.Load())
	// A round may wait for AT commands that time out (180 s for
	// AT+COPS), so the bound is the poll interval plus that.
	return time.Since(last) < d.tele.Load().poll+4*time.Minute
}

// applyReload takes over what can change without restarting and says
// what cannot.
func (d *daemon) applyReload(c config.Config) {
	if d.o.Level != nil {
		var l slog.Level
		if err := l.UnmarshalText([]byte(c.Log.Level)); err == nil {
			d.o.Level.Set(l)
		}
	}
	d.tele.Store(teleOf(c.Telemetry))
	kick(d.kickTele)
	var restart []string
	if c.Modem != d.cfg.Modem {
		restart = append(restart, "modem")
	}
	if c.SMS != d.cfg.SMS || fmt.Sprint(c.SMSCommands) != fmt.Sprint(d.cfg.SMSCommands) {
		restart = append(restart, "sms")
	}
	if c.BSC != d.cfg.BSC {
		restart = append(restart, "bsc")
	}
	if fmt.Sprint(c.MQTT) != fmt.Sprint(d.cfg.MQTT) {
		restart = append(restart, "mqtt")
	}
	if c.Power != d.cfg.Power {
		restart = append(restart, "power")
	}
	if c.Data != d.cfg.Data {
		restart = append(restart, "data")
	}
	if d.data.reload(c.Network) {
		d.log.Info("agent: network profile reloaded; the modem session restarts to apply it")
	}
	if c.Supervisor != d.cfg.Supervisor {
		restart = append(restart, "supervisor")
	}
	if c.State != d.cfg.State || c.Device != d.cfg.Device {
		restart = append(restart, "state/device")
	}
	if len(restart) > 0 {
		d.log.Warn("agent: reloaded log level and telemetry; other changed sections take effect at the next restart", "sections", restart)
	} else {
		d.log.Info("agent: configuration reloaded", "log_level", c.Log.Level)
	}
}

func (d *daemon) startLink(ctx context.Context, wg *sync.WaitGroup) {
	open := d.o.OpenPort
	if open == nil {
		open = port.Open
	}
	if d.cfg.Modem.Port == "auto" {
		// Found again on every attempt: after a power-cycle the modem may
		// come back as another ttyUSB.
		byPath := open
		open = func(_ string, baud int) (io.ReadWriteCloser, error) {
			p, err := port.Find(port.SysfsRoot)
			if err != nil {
				return nil, err
			}
			return byPath(p, baud)
		}
	}
	d.keeper = atsession.New(atsession.Config{
		Path:     d.cfg.Modem.Port,
		Baud:     d.cfg.Modem.Baud,
		Open:     open,
		Init:     bg96.InitConfig{SMSC: d.cfg.SMS.SMSC, Log: d.log},
		Unlock:   d.data.unlock,
		Setup:    d.data.setup,
		OnChange: d.linkChanged,
		OnPhase:  func(atsession.Snapshot) { kick(d.dirty) },
		Logger:   d.log,
		Clock:    d.clock,
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = d.keeper.Run(ctx)
	}()
}

// linkChanged turns link changes into events and keeps the birth's
// identity current. It runs on the link's goroutine, before the MQTT
// client may exist: events go straight to the store's queue, which the
// client drains once it runs.
func (d *daemon) linkChanged(s *atsession.Session, err error) {
	defer kick(d.dirty)
	if s != nil {
		attrs := event.Attrs{"seq": s.Seq, "imei": s.Identity.IMEI, "fw": s.Identity.Firmware}
		d.event(event.Event{Type: event.Modem, Level: event.Info, Msg: "modem session up", Attrs: attrs})
		s.AT.AddIndication("+CTZE", d.data.timeZoneReport)
		s.AT.AddIndication("+CTZV", d.data.timeZoneReport)
		d.data.timeZoneReport(nil)
		d.checkSwap("iccid", event.SIM, "SIM changed", s.Identity.ICCID)
		d.checkSwap("imei", event.Modem, "modem changed", s.Identity.IMEI)
		d.setIdentity(s.Identity)
		return
	}
	d.setErr(err)
	d.event(event.Event{Type: event.Modem, Level: event.Warn, Msg: "modem session down: " + err.Error()})
}

// checkSwap remembers an identity field (the ICCID, the IMEI) under key
// and reports a change of SIM or modem.
func (d *daemon) checkSwap(key, typ, msg, now string) {
	if now == "" {
		return
	}
	prev, err := d.st.LoadState(key)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		d.log.Warn("agent: reading the last "+key, "err", err)
		return
	}
	if string(prev) == now {
		return
	}
	if len(prev) > 0 {
		d.event(event.Event{Type: typ, Level: event.Warn, Msg: msg, Attrs: event.Attrs{"from": string(prev), "to": now}})
	}
	if err := d.st.SaveState(key, []byte(now)); err != nil {
		d.log.Warn("agent: saving the "+key, "err", err)
	}
}

// identityKey is where the last birth identity is kept, so the birth
// after a restart names the modem before its session is up again.
const identityKey = "identity"

func (d *daemon) storedIdentity() mqtt.Identity {
	var id mqtt.Identity
	if b, err := d.st.LoadState(identityKey); err == nil {
		if err := json.Unmarshal(b, &id); err != nil {
			d.log.Warn("agent: stored identity unreadable; the next session's replaces it", "err", err)
		}
	}
	id.Agent = d.o.Version
	return id
}

// setIdentity takes a session's identity for the birth. A field the
// session could not read (a SIM still busy) keeps its last value, so a
// slow SIM does not blank the fleet's inventory; a swap replaces it.
func (d *daemon) setIdentity(i bg96.Identity) {
	d.mu.Lock()
	id := d.ident
	for _, f := range []struct {
		dst *string
		v   string
	}{
		{&id.IMEI, i.IMEI}, {&id.ICCID, i.ICCID}, {&id.IMSI, i.IMSI}, {&id.Model, i.Model}, {&id.Firmware, i.Firmware},
	} {
		if f.v != "" {
			*f.dst = f.v
		}
	}
	changed := id != d.ident
	d.ident = id
	c := d.client
	d.mu.Unlock()
	if c != nil {
		c.SetIdentity(id)
	}
	if changed {
		b, _ := json.Marshal(id) // strings only: cannot fail
		if err := d.st.SaveState(identityKey, b); err != nil {
			d.log.Warn("agent: saving the identity", "err", err)
		}
	}
}

// resolveDeviceID is the configured id, else the SIM's ICCID: the one
// seen last (so a gateway whose modem is dead still reports under its
// name), else the first session's. A gateway that never learnt its ICCID
// and whose modem does not answer within ReadyTimeout reports under its
// host name: silent, it could not be helped.
func (d *daemon) resolveDeviceID(ctx context.Context) (string, error) {
	if d.cfg.Device.ID != "" {
		return d.cfg.Device.ID, nil
	}
	if b, err := d.st.LoadState("iccid"); err == nil && len(b) > 0 {
		return string(b), nil
	}
	d.o.Notify("STATUS=waiting for the modem to learn the ICCID (the device id)")
	d.log.Info("agent: waiting for the modem to read the ICCID, the default device id")
	wctx, cancel := context.WithTimeout(ctx, d.o.ReadyTimeout)
	defer cancel()
	for {
		s, err := d.keeper.Wait(wctx)
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			host, herr := os.Hostname()
			if herr != nil || host == "" {
				return "", fmt.Errorf("agent: no ICCID from the modem within %s and no host name (%v): set device.id", d.o.ReadyTimeout, herr)
			}
			d.log.Warn("agent: no ICCID from the modem; reporting under the host name until it answers (or set device.id)", "id", host)
			return host, nil
		}
		if s.Identity.ICCID != "" {
			return s.Identity.ICCID, nil
		}
		d.log.Warn("agent: the modem gave no ICCID; set device.id or check the SIM")
		select {
		case <-wctx.Done():
		case <-s.AT.Closed():
		}
	}
}

func (d *daemon) startMQTT(ctx context.Context) (<-chan struct{}, error) {
	m := d.cfg.MQTT
	conn := mqtt.Conn{
		Broker: m.Broker, AllowPlaintext: m.AllowPlaintext,
		CAFile: m.CAFile, CertFile: m.ClientCert, KeyFile: m.ClientKey,
		Username: m.Username, KeepAlive: m.KeepAlive.Duration, Dial: d.o.Dial,
		Time: d.data.clock.Now,
	}
	if m.PasswordFile != "" {
		pw, err := secret.Read(m.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("agent: mqtt.password_file: %w", err)
		}
		conn.Password = pw
	}
	if m.Broker == "" {
		// Not ctx: the broker must outlive the client's offline message.
		var opts []embedded.Option
		if conn.Password != "" {
			opts = append(opts, embedded.WithUser(conn.Username, conn.Password))
		}
		b, err := embedded.Start(context.WithoutCancel(ctx), m.EmbeddedListen, d.log, opts...)
		if err != nil {
			return nil, fmt.Errorf("agent: no mqtt.broker configured, and the embedded one failed: %w", err)
		}
		d.broker = b
		conn.Broker, conn.AllowPlaintext = b.URL(), true
		d.log.Warn("agent: no mqtt.broker configured: telemetry goes to an embedded broker on this device", "url", b.URL())
	}
	d.mu.Lock()
	id := d.ident
	d.mu.Unlock()
	c, err := mqtt.New(mqtt.Options{
		Conn:         conn,
		Prefix:       m.Prefix,
		DeviceID:     d.deviceID,
		Identity:     id,
		Ordered:      mqtt.Adapt(d.st.Events()),
		Telemetry:    mqtt.Adapt(d.st.Telemetry()),
		TelemetryQoS: byte(m.TelemetryQoS),
		NextSession:  d.nextSession,
		OnChange:     func() { kick(d.dirty) },
		Commands: mqtt.Commands{
			Enabled:   m.Commands,
			PerMinute: m.CommandsPerMinute,
			AllowTo:   m.AllowTo,
			Handlers: mqtt.Handlers{
				SendSMS: func(ctx context.Context, req mqtt.SMSRequest) error {
					_, err := d.SendSMS(ctx, req)
					return err
				},
				Status: func(context.Context) error {
					d.PublishTelemetry()
					return nil
				},
				Recover: func(_ context.Context, step string) error { return d.Recover(step) },
			},
		},
		Logger: d.log,
	})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	d.mu.Lock()
	d.client = c
	pending := d.pending
	d.pending = nil
	// A session that came up while the client was made has set d.ident
	// without a client to tell.
	c.SetIdentity(d.ident)
	d.mu.Unlock()
	for _, e := range pending {
		if err := c.QueueEvent(wireEvent(e)); err != nil {
			d.log.Error("agent: event not queued", "type", e.Type, "err", err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := c.Run(ctx); err != nil {
			d.log.Error("agent: mqtt", "err", err)
		}
	}()
	return done, nil
}

// nextSession numbers MQTT sessions across restarts, so the fleet can
// tell a stale last will from the current session's.
func (d *daemon) nextSession() (uint64, error) {
	var n uint64
	if b, err := d.st.LoadState("mqtt-session"); err == nil {
		if _, err := fmt.Sscan(string(b), &n); err != nil {
			return 0, fmt.Errorf("stored session number %q: %w", b, err)
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return 0, err
	}
	n++
	return n, d.st.SaveState("mqtt-session", []byte(fmt.Sprint(n)))
}

// event logs e and queues it durably for MQTT.
func (d *daemon) event(e event.Event) {
	lvl := slog.LevelInfo
	switch e.Level {
	case event.Warn:
		lvl = slog.LevelWarn
	case event.Err:
		lvl = slog.LevelError
	}
	d.log.Log(context.Background(), lvl, "event: "+e.Msg, "type", e.Type, "attrs", e.Attrs)
	d.queueEvent(e)
}

// queueEvent queues e durably for MQTT; for events their source has
// logged already (the supervisor's).
func (d *daemon) queueEvent(e event.Event) {
	if e.Time.IsZero() {
		e.Time = d.now()
	}
	defer kick(d.dirty)
	if err := d.feed.push(noticeEvent(e)); err != nil {
		d.log.Warn("agent: event not written to the local feed", "type", e.Type, "err", err)
	}
	d.mu.Lock()
	c := d.client
	if c == nil {
		// The client needs the device id, which may come from the very
		// session whose arrival this event reports; it takes these over
		// when it starts.
		d.pending = append(d.pending, e)
	}
	d.mu.Unlock()
	if c != nil {
		if err := c.QueueEvent(wireEvent(e)); err != nil {
			d.log.Error("agent: event not queued", "type", e.Type, "err", err)
		}
	}
}

// wireEvent is e as MQTT carries it.
func wireEvent(e event.Event) mqtt.Event {
	return mqtt.Event{TS: e.Time.Unix(), Type: e.Type, Level: e.Level, Msg: e.Msg, Attrs: e.Attrs}
}

// runOutbox sends MO messages whenever a session is up, until ctx ends or
// stop is closed; a send in flight then finishes first (Outbox.Stop).
func (d *daemon) runOutbox(ctx context.Context, stop <-chan struct{}) {
	for {
		changed := d.keeper.Changed()
		if _, err := d.keeper.Current(); err != nil {
			select {
			case <-ctx.Done():
				return
			case <-stop:
				return
			case <-changed:
			}
			continue
		}
		err := d.outbox.Run(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		if !errors.Is(err, at.ErrClosed) {
			d.setErr(err)
			d.log.Error("agent: outbox", "err", err)
		}
		if !waitChange(ctx, changed, 5*time.Second) {
			return
		}
	}
}

// runInbox runs an inbox on each session in turn.
func (d *daemon) runInbox(ctx context.Context) {
	for {
		s, err := d.keeper.Wait(ctx)
		if err != nil {
			return
		}
		changed := d.keeper.Changed()
		d.readSMSC(ctx, s)
		in := messaging.NewInbox(s.AT, messaging.InboxConfig{
			Store: d.st, Publish: d.publishSMS, Logger: d.log, Clock: d.clock,
		})
		sctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-s.AT.Closed():
			case <-sctx.Done():
			}
			cancel()
		}()
		err = in.Run(sctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil && !errors.Is(err, at.ErrClosed) && !errors.Is(err, context.Canceled) {
			d.setErr(err)
			d.log.Error("agent: inbox", "err", err)
		}
		if !waitChange(ctx, changed, 5*time.Second) {
			return
		}
	}
}

// publishSMS hands an MT message to local readers and to MQTT, unless it
// is a command by SMS; it stays pending in the inbox until both took it.
func (d *daemon) publishSMS(ctx context.Context, m messaging.Inbound) error {
	if taken, err := d.smsCommand(ctx, m); taken || err != nil {
		return err
	}
	if err := d.feed.push(inboundEvent(m)); err != nil {
		return fmt.Errorf("local feed: %w", err)
	}
	return d.client.QueueSMSIn(m)
}

// runResults hands MO outcomes from the store's journal to MQTT, when the
// store says there are new ones, and again a minute after a hand-off
// failed.
func (d *daemon) runResults(ctx context.Context) {
	for {
		var retry <-chan time.Time
		if !d.reportResults() {
			retry = time.After(time.Minute)
		}
		select {
		case <-ctx.Done():
			return
		case <-d.results:
		case <-retry:
		}
	}
}

// reportResults drains the journal; false means something is left there.
func (d *daemon) reportResults() bool {
	q := d.st.Results()
	for {
		items, err := q.Peek(32)
		if err != nil {
			d.log.Error("agent: reading SMS results", "err", err)
			return false
		}
		if len(items) == 0 {
			return true
		}
		for _, it := range items {
			if err := d.feed.push(resultEvent(it.Rec)); err != nil {
				d.log.Warn("agent: SMS result not written to the local feed; retrying later", "err", err)
				return false
			}
			if err := d.client.QueueSMSResult(resultOf(it.Rec)); err != nil {
				d.log.Warn("agent: SMS result not queued; retrying later", "err", err)
				return false
			}
			if _, err := q.Ack(it.Seq); err != nil {
				d.log.Error("agent: SMS result journal", "err", err)
				return false
			}
		}
	}
}

// resultOf converts a journalled outbox item. One that does not decode is
// still reported, so its requester hears of it.
func resultOf(rec []byte) mqtt.SMSResult {
	it, err := decodeItem(rec)
	if err != nil {
		return mqtt.SMSResult{ID: "unknown", State: string(store.Failed), Reason: "journal record unreadable: " + err.Error()}
	}
	return mqtt.SMSResult{
		TS: it.Updated.Unix(), ID: it.ID, State: string(it.State), Refs: it.Refs,
		Delivered: it.Delivered, Code: it.Code, Reason: it.Reason, Attempts: it.Attempts,
	}
}

func resultEvent(rec []byte) localapi.Event {
	r := resultOf(rec)
	st := localapi.SMSStatus{V: localapi.V, ID: r.ID, State: r.State, Reason: r.Reason}
	if it, err := decodeItem(rec); err == nil {
		st = smsStatusOf(it)
	}
	return localapi.Event{Type: localapi.EventSMSResult, TS: unixUTC(r.TS), Result: &st}
}

func unixUTC(ts int64) time.Time { return time.Unix(ts, 0).UTC() }

func (d *daemon) setErr(err error) {
	d.mu.Lock()
	d.lastErr = err.Error()
	d.mu.Unlock()
}

// waitChange waits for the link to change or for d, whichever is first,
// so a component that failed on a session does not spin on it.
func waitChange(ctx context.Context, changed <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-changed:
	case <-t.C:
	}
	return true
}

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// linkPort gives the outbox the current session, whichever it is.
type linkPort struct{ l *atsession.Keeper }

func (p linkPort) Command(ctx context.Context, cmd string, opts ...at.CommandOption) ([]string, error) {
	s, err := p.l.Current()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", at.ErrClosed, err)
	}
	return s.AT.Command(ctx, cmd, opts...)
}

func (p linkPort) SMSCommand(ctx context.Context, cmd, body string, opts ...at.CommandOption) ([]string, error) {
	s, err := p.l.Current()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", at.ErrClosed, err)
	}
	return s.AT.SMSCommand(ctx, cmd, body, opts...)
}

// writeStatus replaces RuntimeDir/status.json atomically.
func (d *daemon) writeStatus() {
	if d.o.RuntimeDir == "" {
		return
	}
	b, err := d.statusJSON()
	if err == nil {
		err = writeAtomic(filepath.Join(d.o.RuntimeDir, StatusFile), b)
	}
	if err != nil {
		d.log.Warn("agent: status file", "err", err)
	}
}

func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
