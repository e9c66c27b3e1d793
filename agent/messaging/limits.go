package messaging

import (
	"time"

	"cellagent/agent/config"
	"cellagent/agent/ratelimit"
)

// Limits turns the [sms] limits of the configuration into the outbox's
// rate-limiter windows; a zero value in the file disables that window.
func Limits(c config.SMSConfig) ratelimit.Config {
	var rc ratelimit.Config
	for _, w := range []struct {
		max    int
		period time.Duration
	}{{c.PerMinute, time.Minute}, {c.PerHour, time.Hour}, {c.PerDay, 24 * time.Hour}} {
		if w.max > 0 {
			rc.Global = append(rc.Global, ratelimit.Window{Period: w.period, Max: w.max})
		}
	}
	if c.PerDestinationDay > 0 {
		rc.PerDest = append(rc.PerDest, ratelimit.Window{Period: 24 * time.Hour, Max: c.PerDestinationDay})
	}
	return rc
}
