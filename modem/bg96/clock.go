package bg96

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// NetworkTime is the time the network gave the modem (NITZ), in UTC, and
// the network's time zone offset.
type NetworkTime struct {
	Time   time.Time
	Zone   time.Duration // the network's offset from UTC
	Source string        // "qlts" or "cclk"
}

// parseStamp reads "yy/MM/dd,hh:mm:ss±zz" or "yyyy/MM/dd,hh:mm:ss±zz"
// (zz in quarter hours) as a UTC time and the zone offset. A stamp in
// local time (AT+QLTS=2, AT+CCLK?) is converted by its zone; AT+QLTS=1
// gives GMT with the zone alongside.
func parseStamp(line, s string, local bool) (time.Time, time.Duration, error) {
	date, rest, ok := strings.Cut(s, ",")
	if !ok || len(rest) < 9 {
		return time.Time{}, 0, parseErr(line, "want date,time±zone")
	}
	clock, zone := rest[:8], rest[8:]
	// AT+QLTS puts the daylight saving adjustment after the zone, inside
	// the quotes.
	zone, _, _ = strings.Cut(zone, ",")
	layout := "06/01/02 15:04:05"
	if len(date) == 10 {
		layout = "2006/01/02 15:04:05"
	}
	t, err := time.Parse(layout, date+" "+clock)
	if err != nil {
		return time.Time{}, 0, parseErr(line, "bad date or time: %v", err)
	}
	if len(zone) < 2 || (zone[0] != '+' && zone[0] != '-') {
		return time.Time{}, 0, parseErr(line, "want a zone in quarter hours, e.g. +04")
	}
	q, err := strconv.Atoi(zone[1:])
	if err != nil || q > 56 {
		return time.Time{}, 0, parseErr(line, "zone %q is not 0..56 quarter hours", zone)
	}
	off := time.Duration(q) * 15 * time.Minute
	if zone[0] == '-' {
		off = -off
	}
	if local {
		t = t.Add(-off)
	}
	return t.UTC(), off, nil
}

// ParseQLTS parses `+QLTS: "2019/01/13,03:40:48+32,0"`, the answer to
// AT+QLTS=1 (the latest time synchronised from the network, in GMT; the
// last field is the daylight saving adjustment). An empty stamp means
// the network has not sent its time.
func ParseQLTS(line string) (NetworkTime, error) {
	f, err := fields(line, "+QLTS:")
	if err != nil {
		return NetworkTime{}, err
	}
	if f[0] == "" {
		return NetworkTime{}, parseErr(line, "the network has not sent its time")
	}
	t, zone, err := parseStamp(line, f[0], false)
	if err != nil {
		return NetworkTime{}, err
	}
	return NetworkTime{Time: t, Zone: zone, Source: "qlts"}, nil
}

// ParseCCLK parses `+CCLK: "19/01/13,12:40:48+32"`, the real-time clock
// in local time with its zone; valid only after the network has set it.
func ParseCCLK(line string) (NetworkTime, error) {
	f, err := fields(line, "+CCLK:")
	if err != nil {
		return NetworkTime{}, err
	}
	t, zone, err := parseStamp(line, f[0], true)
	if err != nil {
		return NetworkTime{}, err
	}
	return NetworkTime{Time: t, Zone: zone, Source: "cclk"}, nil
}

// plausibleFrom is the earliest network time taken as real: a BG96 whose
// clock was never set prints its firmware's epoch (years ago).
var plausibleFrom = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// NetworkTime reads the network's time: AT+QLTS=1 first, then AT+CCLK?,
// which the BG96 sets from the network too but also runs free from its
// boot epoch, so only a plausible value counts.
func (m *Modem) NetworkTime(ctx context.Context) (NetworkTime, error) {
	nt, err := query(ctx, m, "network time", "AT+QLTS=1", "+QLTS:", ParseQLTS)
	if err == nil {
		return nt, nil
	}
	c, cerr := query(ctx, m, "clock", "AT+CCLK?", "+CCLK:", ParseCCLK)
	if cerr == nil && c.Time.After(plausibleFrom) {
		return c, nil
	}
	if cerr == nil {
		cerr = fmt.Errorf("bg96: clock %s is not set from the network", c.Time.Format(time.RFC3339))
	}
	return NetworkTime{}, fmt.Errorf("%w; %w", err, cerr)
}
