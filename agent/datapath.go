package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"cellagent/agent/bearer"
	"cellagent/agent/config"
	"cellagent/agent/event"
	"cellagent/agent/nettime"
	"cellagent/modem/at"
	"cellagent/modem/bg96"
	"cellagent/transport/secret"
)

// Event types of the data path.
const (
	EventNetwork = "network" // the profile was written, or the SIM refused its PIN
	EventBearer  = "bearer"  // the bearer came up, failed or was blocked
	EventClock   = "clock"   // system and network time disagree by more than nettime.Skew
)

// timeEvery is how often the network's time is read again without a
// time zone report.
const timeEvery = time.Hour

// NetworkStatus is the network profile in status.json: each configured
// setting as wanted and as the modem has it.
type NetworkStatus struct {
	Settings []bg96.SettingState `json:"settings,omitempty"`
	// LastChanges are what the last initialisation wrote; Restarted says
	// it restarted the radio for them.
	LastChanges []bg96.Change `json:"last_changes,omitempty"`
	Restarted   bool          `json:"restarted,omitempty"`
	CheckedAt   time.Time     `json:"checked_at,omitzero"`
	Error       string        `json:"error,omitempty"`
	// Fault is a configuration fault no reset fixes (a wrong PIN, a
	// wrong APN).
	Fault string `json:"fault,omitempty"`
}

// dataPath owns the network profile, the SIM PIN and the bearer.
type dataPath struct {
	d      *daemon
	bearer *bearer.Bearer
	clock  *nettime.Clock

	mu       sync.Mutex
	cfg      config.NetworkConfig
	status   NetworkStatus
	pinFault string
	// timeAt is when the network's time was last read (zero: read it at
	// the next chance); skewed says the clock event is out.
	timeAt time.Time
	skewed bool
}

func newDataPath(d *daemon) *dataPath {
	return &dataPath{d: d, cfg: d.cfg.Network, clock: nettime.New(d.clock, nettime.BuildTime())}
}

// readTime reads the network's time when it is due: at every new
// session, hourly, and after a time zone report (+CTZE/+CTZV).
func (p *dataPath) readTime(ctx context.Context, m *bg96.Modem) {
	p.mu.Lock()
	due := p.timeAt.IsZero() || time.Since(p.timeAt) >= timeEvery
	p.mu.Unlock()
	if !due {
		return
	}
	nt, err := m.NetworkTime(ctx)
	if err != nil {
		p.d.log.Debug("agent: no network time yet", "err", err)
		return
	}
	skew := p.clock.Set(nt.Time, nt.Source, nt.Zone)
	p.mu.Lock()
	p.timeAt = time.Now()
	was := p.skewed
	p.skewed = skew > nettime.Skew || skew < -nettime.Skew
	now := p.skewed
	p.mu.Unlock()
	if now && !was {
		msg := fmt.Sprintf("system clock is %s off the network's time", skew.Round(time.Second))
		if !p.clock.Plausible() {
			msg += "; TLS certificates are checked against the network's time until NTP sets the clock"
		}
		p.d.event(event.Event{Type: EventClock, Level: event.Warn, Msg: msg, Attrs: event.Attrs{
			"skew_s": int64(skew / time.Second), "network_time": nt.Time.UTC().Format(time.RFC3339), "source": nt.Source,
			"system_plausible": p.clock.Plausible(),
		}})
	}
}

// timeZoneReport makes the next poll read the network's time again.
func (p *dataPath) timeZoneReport([]string) {
	p.mu.Lock()
	p.timeAt = time.Time{}
	p.mu.Unlock()
	kick(p.d.kickTele)
}

// profile builds the profile wanted from the configuration.
func profileOf(n config.NetworkConfig) (bg96.Profile, error) {
	p := bg96.Profile{CID: n.CID, PDPType: n.PDPType, APN: n.APN, Operator: n.Operator}
	if n.APN != "" {
		p.Auth = map[string]bg96.Auth{"none": bg96.AuthNone, "pap": bg96.AuthPAP, "chap": bg96.AuthCHAP}[n.Auth]
		p.Username = n.Username
		if n.PasswordFile != "" {
			pw, err := secret.Read(n.PasswordFile)
			if err != nil {
				return p, fmt.Errorf("network.password_file: %w", err)
			}
			p.Password = pw
		}
	}
	for _, r := range n.RAT {
		p.RAT = append(p.RAT, map[string]bg96.RAT{config.RATLTEM: bg96.RATLTEM, config.RATNBIoT: bg96.RATNBIoT, config.RATGSM: bg96.RATGSM}[r])
	}
	for _, m := range []struct {
		s   string
		dst **uint64
	}{{n.GSMBands, &p.GSMBands}, {n.LTEMBands, &p.LTEMBands}, {n.NBIoTBands, &p.NBIoTBands}} {
		if v, ok := config.ParseBandMask(m.s); ok {
			*m.dst = &v
		}
	}
	if n.Roaming != "" {
		allow := n.Roaming == "allow"
		p.Roaming = &allow
	}
	return p, nil
}

// setup applies the profile on every new modem session: read, write only
// what differs, one radio restart at most. A profile that cannot be
// applied is reported and the session goes on: a modem with its old
// profile is better than none.
func (p *dataPath) setup(ctx context.Context, c bg96.Commander) error {
	p.mu.Lock()
	n := p.cfg
	p.mu.Unlock()
	prof, err := profileOf(n)
	if err != nil {
		p.record(bg96.Applied{}, err)
		p.d.event(event.Event{Type: EventNetwork, Level: event.Err, Msg: "network profile not applied: " + err.Error()})
		return nil
	}
	res, err := bg96.ApplyProfile(ctx, c, prof)
	if err != nil && (errors.Is(err, at.ErrClosed) || ctx.Err() != nil) {
		return err
	}
	p.record(res, err)
	if len(res.Changes) > 0 {
		var names []string
		for _, ch := range res.Changes {
			names = append(names, ch.Setting)
		}
		attrs := event.Attrs{"changed": strings.Join(names, ","), "restarted": res.Restarted}
		for _, ch := range res.Changes {
			if ch.To != "" {
				attrs[ch.Setting] = ch.From + " -> " + ch.To
			}
		}
		p.d.event(event.Event{Type: EventNetwork, Level: event.Info, Msg: "network profile written to the modem: " + strings.Join(names, ", "), Attrs: attrs})
	}
	if err != nil {
		p.d.event(event.Event{Type: EventNetwork, Level: event.Warn, Msg: "network profile partly applied: " + err.Error()})
	}
	return nil
}

func (p *dataPath) record(res bg96.Applied, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status.Settings, p.status.LastChanges, p.status.Restarted = res.Settings, res.Changes, res.Restarted
	p.status.CheckedAt, p.status.Error = p.d.now(), ""
	if err != nil {
		p.status.Error = err.Error()
	}
}

// unlock enters the SIM PIN at start-up. A PIN the SIM refused, or one
// it would lock on, is never tried again until the configuration is
// reloaded: every wrong entry brings the SIM closer to PUK lock.
func (p *dataPath) unlock(ctx context.Context, c bg96.Commander) error {
	p.mu.Lock()
	fault, file := p.pinFault, p.cfg.PINFile
	p.mu.Unlock()
	if fault != "" {
		return errors.New(fault)
	}
	pin := ""
	if file != "" {
		var err error
		if pin, err = secret.Read(file); err != nil {
			return fmt.Errorf("network.pin_file: %w", err)
		}
		pin = strings.TrimSpace(pin)
	}
	err := bg96.UnlockSIM(ctx, c, pin)
	for _, f := range []error{bg96.ErrPINWrong, bg96.ErrPINLastAttempt, bg96.ErrSIMPUK, bg96.ErrPINNeeded} {
		if errors.Is(err, f) {
			p.mu.Lock()
			p.pinFault = err.Error()
			p.mu.Unlock()
			p.d.event(event.Event{Type: EventNetwork, Level: event.Err, Msg: "SIM PIN: " + err.Error() + "; not retried until the configuration is reloaded"})
			return err
		}
	}
	if err == nil {
		p.d.event(event.Event{Type: EventNetwork, Level: event.Info, Msg: "SIM PIN entered"})
	}
	return err
}

// fault is what the supervisor must not try to reset away.
func (p *dataPath) fault() string {
	p.mu.Lock()
	f := p.pinFault
	p.mu.Unlock()
	if f != "" {
		return "SIM PIN: " + f
	}
	if p.bearer != nil {
		return p.bearer.Fault()
	}
	return ""
}

// reload takes a new [network] section: the faults it may fix are
// forgotten, and the modem session restarts so the profile is applied.
func (p *dataPath) reload(n config.NetworkConfig) bool {
	p.mu.Lock()
	same := fmt.Sprint(n) == fmt.Sprint(p.cfg)
	p.cfg, p.pinFault = n, ""
	p.mu.Unlock()
	if same {
		return false
	}
	p.d.keeper.Restart("the network profile changed")
	if p.bearer != nil {
		p.bearer.Reset()
	}
	return true
}

func (p *dataPath) snapshot() *NetworkStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.status.CheckedAt.IsZero() && p.pinFault == "" {
		return nil
	}
	s := p.status
	s.Settings, s.LastChanges = slices.Clone(s.Settings), slices.Clone(s.LastChanges)
	s.Fault = p.pinFault
	if s.Fault == "" && p.bearer != nil {
		s.Fault = p.bearer.Fault()
	}
	return &s
}

// newBearer builds the bearer of [data]; nil in mode off.
func (p *dataPath) newBearer() (*bearer.Bearer, error) {
	c := p.d.cfg.Data
	if c.Mode == bearer.ModeOff {
		return nil, nil
	}
	cfg := bearer.Config{
		Mode: c.Mode, Interface: c.Interface,
		BackoffMin: c.BackoffMin.Duration, BackoffMax: c.BackoffMax.Duration,
		ConfigFault: bg96.ConfigCause,
		Cause: func(ctx context.Context) (string, error) {
			s, err := p.d.keeper.Current()
			if err != nil {
				return "", err
			}
			return s.Modem.LastFailure(ctx)
		},
		OnEvent: func(level, msg string, attrs map[string]any) {
			p.d.event(event.Event{Type: EventBearer, Level: level, Msg: msg, Attrs: event.Attrs(attrs)})
			kick(p.d.kickTele)
		},
		Logger: p.d.log, Clock: p.d.clock,
	}
	if c.Mode == bearer.ModePPP {
		unit, _ := strconv.Atoi(strings.TrimPrefix(c.Interface, "ppp"))
		n := p.d.cfg.Network
		cfg.PPP = bearer.PPP{PPPD: c.PPPD, Port: c.Port, CID: n.CID, Unit: unit,
			ConnectTimeout: c.ConnectTimeout.Duration, RuntimeDir: p.d.o.RuntimeDir}
		if n.Auth != "none" {
			cfg.PPP.Username = n.Username
			if n.PasswordFile != "" {
				pw, err := secret.Read(n.PasswordFile)
				if err != nil {
					return nil, fmt.Errorf("agent: network.password_file: %w", err)
				}
				cfg.PPP.Password = pw
			}
		}
	}
	p.bearer = bearer.New(cfg)
	return p.bearer, nil
}

// runBearer runs the bearer until ctx ends.
func (p *dataPath) runBearer(ctx context.Context) {
	if p.bearer == nil {
		return
	}
	if err := p.bearer.Run(ctx); err != nil && ctx.Err() == nil {
		p.d.log.Error("agent: bearer stopped", "err", err)
	}
}
