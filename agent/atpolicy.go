package agent

import (
	"strings"
	"time"

	"cellagent/modem/at"
)

// stateful are the extended commands whose set and execute forms change
// what the agent relies on; their queries (?) and tests (=?) stay free.
var stateful = map[string]string{
	"+CFUN":    "changes the modem's functionality (the recovery ladder's step)",
	"+QPOWD":   "powers the modem down",
	"+CMGF":    "leaves PDU mode, which the SMS code needs",
	"+CNMI":    "reroutes new-SMS indications away from the inbox",
	"+CMEE":    "changes how errors read, which the engine classifies",
	"+CREG":    "changes the registration reports the agent set",
	"+CGREG":   "changes the registration reports the agent set",
	"+CEREG":   "changes the registration reports the agent set",
	"+CPMS":    "moves SMS storage under the inbox",
	"+CMGD":    "deletes SMS the inbox may not have stored yet",
	"+CMGS":    "sends an SMS past the outbox (use POST /v1/sms)",
	"+CMGW":    "writes to SMS storage under the inbox",
	"+CMSS":    "sends an SMS past the outbox",
	"+CSCA":    "changes the SMS service centre",
	"+CSMS":    "changes the SMS service",
	"+CSCS":    "changes the character set",
	"+IPR":     "changes the serial speed",
	"+CPIN":    "spends SIM PIN attempts",
	"+CLCK":    "locks or unlocks the SIM",
	"+CPWD":    "changes SIM passwords",
	"+COPS":    "changes operator selection",
	"+CGATT":   "attaches or detaches the data service",
	"+CGACT":   "changes the data bearer",
	"+CGDCONT": "changes the data bearer's profile",
	"+QICSGP":  "changes the data bearer's profile",
	"+QIACT":   "changes the data bearer",
	"+QIDEACT": "changes the data bearer",
	"+QCFG":    "writes radio settings to the modem's NVRAM",
	"+QURCCFG": "reroutes unsolicited result codes",
	"+CRSM":    "writes to the SIM",
	"+CSIM":    "writes to the SIM",
}

// basic are the V.250 basic commands, by prefix after AT, that break the
// engine's conversation with the modem.
var basic = []struct{ prefix, why string }{
	{"E1", "turns echo on, which the engine does not expect"},
	{"V0", "makes result codes numeric"},
	{"Q1", "suppresses result codes"},
	{"Z", "resets the modem's settings"},
	{"&F", "restores factory settings"},
	{"&W", "stores settings in the modem's profile"},
	{"D", "dials, which takes the port into data mode"},
	{"O", "returns to data mode"},
	{"S", "changes S-registers such as the line ending"},
	{"+++", "leaves data mode"},
}

// atRefusal says why cmd, from a local client, could break the agent's
// hold on the modem; empty means it may go.
func atRefusal(cmd string) string {
	u := strings.ToUpper(strings.TrimSpace(cmd))
	rest, ok := strings.CutPrefix(u, "AT")
	if !ok {
		return "is not an AT command"
	}
	if strings.Contains(rest, ";") {
		return "chains several commands; send them one at a time"
	}
	if !strings.HasPrefix(rest, "+") {
		for _, b := range basic {
			if strings.HasPrefix(rest, b.prefix) {
				return b.why
			}
		}
		return ""
	}
	name, form := rest, ""
	if i := strings.IndexAny(rest, "=?"); i >= 0 {
		name, form = rest[:i], rest[i:]
	}
	why, ok := stateful[name]
	if !ok || form == "?" || form == "=?" {
		return ""
	}
	return why
}

func atTimeout(d time.Duration) []at.CommandOption {
	if d <= 0 {
		return nil
	}
	return []at.CommandOption{at.WithTimeout(d)}
}
