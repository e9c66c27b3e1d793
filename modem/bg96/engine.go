package bg96

import (
	"time"

	"cellagent/modem/at"
)

// EngineOptions tell the generic AT engine what it must know of the BG96:
// how long each command may take and which bare words it sends
// unsolicited. Every engine that talks to a BG96 starts with them.
func EngineOptions() []at.Option {
	opts := make([]at.Option, 0, len(commandTimeouts)+1)
	for cmd, d := range commandTimeouts {
		opts = append(opts, at.WithCommandTimeout(cmd, d))
	}
	return append(opts, at.WithBareURCs(bareURCs...))
}

// commandTimeouts are the longest answer times Quectel documents for the
// BG96 (BG96 AT Commands Manual, each command's "Maximum Response Time",
// which its vendor driver uses too), keyed by the command without "AT".
// The engine takes the longest matching key, so "+COPS?" is a quick query
// while "+COPS=" may scan for three minutes.
var commandTimeouts = map[string]time.Duration{
	"+COPS":    180 * time.Second,
	"+COPS?":   5 * time.Second,
	"+CGATT":   140 * time.Second,
	"+CGATT?":  5 * time.Second,
	"+CGACT":   150 * time.Second,
	"+CGACT?":  5 * time.Second,
	"+QIACT":   150 * time.Second,
	"+QIACT?":  5 * time.Second,
	"+QIDEACT": 40 * time.Second,
	"+CMGS":    120 * time.Second,
	"+CMGW":    10 * time.Second,
	"+CMGL":    30 * time.Second,
	"+CMGD":    30 * time.Second,
	"+CFUN":    15 * time.Second,
	"+CFUN?":   5 * time.Second,
	"+QPOWD":   5 * time.Second,
	"+CPIN":    5 * time.Second,
	"+CLCK":    15 * time.Second,
}

// bareURCs are the BG96's unsolicited lines without a "+XXX:" prefix: its
// start-up and power-down announcements.
var bareURCs = []string{"RDY", "APP RDY", "POWERED DOWN", "NORMAL POWER DOWN", "PSM POWER DOWN"}
