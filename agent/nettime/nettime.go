// Package nettime keeps the network's time beside the system's. A gateway
// without a real-time clock boots in 1970 (or at its image's date) and
// keeps that until NTP has run — and NTP may need the cellular link the
// agent is trying to bring up, whose broker and operator API refuse every
// TLS handshake with a clock that far off. The network sends its time on
// registration (NITZ), which the modem reports: when the system clock is
// implausible, certificates are checked against that instead.
package nettime

import (
	"runtime/debug"
	"sync"
	"time"

	"cellagent/modem/clock"
)

// Skew is how far system and network time may differ before it is news.
const Skew = 5 * time.Minute

// Clock is the system clock with the network's time as a fallback.
type Clock struct {
	system clock.Clock
	// built is the binary's build time: a system clock earlier than it is
	// certainly wrong.
	built time.Time

	mu     sync.Mutex
	net    time.Time // the network's time when read
	readAt time.Time // time.Now() then, for its monotonic reading
	// readSys is the system clock at the reading.
	readSys time.Time
	source  string
	zone    time.Duration
}

// New returns a clock over system (clock.System when nil); built zero
// never finds the system clock implausible.
func New(system clock.Clock, built time.Time) *Clock {
	if system == nil {
		system = clock.System
	}
	return &Clock{system: system, built: built}
}

// BuildTime is when the running binary was built, from the VCS stamp the
// go command records (zero when it recorded none, as in tests).
func BuildTime() time.Time {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return time.Time{}
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.time" {
			t, err := time.Parse(time.RFC3339, s.Value)
			if err == nil {
				return t
			}
		}
	}
	return time.Time{}
}

// Set records a reading of the network's time and returns how far the
// system clock is from it (positive: the system is ahead).
func (c *Clock) Set(net time.Time, source string, zone time.Duration) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.net, c.readAt, c.readSys, c.source, c.zone = net, time.Now(), c.system.Now(), source, zone
	return c.readSys.Sub(net)
}

// Plausible says whether the system clock can be right: not earlier than
// the binary's build.
func (c *Clock) Plausible() bool {
	return !c.system.Now().Before(c.built)
}

// Network is the network's time now, from the last reading advanced by
// the monotonic clock (which a step of the wall clock does not move);
// false when the network has not given its time.
func (c *Clock) Network() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.net.IsZero() {
		return time.Time{}, false
	}
	return c.net.Add(time.Since(c.readAt)), true
}

// Now is the time certificates are checked against: the system's while
// it is plausible, else the network's when known.
func (c *Clock) Now() time.Time {
	if !c.Plausible() {
		if t, ok := c.Network(); ok {
			return t
		}
	}
	return c.system.Now()
}

// Status is the clock for status.json.
type Status struct {
	NetworkTime     time.Time `json:"network_time,omitzero"`
	Source          string    `json:"source,omitempty"` // qlts or cclk
	ZoneMinutes     int       `json:"zone_minutes"`
	ReadAt          time.Time `json:"read_at,omitzero"` // system time of the reading
	SkewSeconds     int64     `json:"skew_seconds"`     // system minus network
	SystemPlausible bool      `json:"system_plausible"`
	UsingNetwork    bool      `json:"using_network"` // TLS checks use the network's time
}

// Snapshot returns the clock's state; nil before the network gave its
// time.
func (c *Clock) Snapshot() *Status {
	t, ok := c.Network()
	if !ok {
		return nil
	}
	c.mu.Lock()
	src, zone, readSys := c.source, c.zone, c.readSys
	c.mu.Unlock()
	sys := c.system.Now()
	plausible := c.Plausible()
	return &Status{
		NetworkTime: t, Source: src, ZoneMinutes: int(zone / time.Minute), ReadAt: readSys,
		SkewSeconds: int64(sys.Sub(t) / time.Second), SystemPlausible: plausible, UsingNetwork: !plausible,
	}
}
