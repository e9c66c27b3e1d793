package config

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// NetworkConfig is the modem's network profile. Every key is optional: an
// empty value leaves the modem's own setting alone, so a gateway that was
// configured by other means keeps working. The values live in the modem's
// NVRAM; the agent reads them at every initialisation and writes only
// what differs.
type NetworkConfig struct {
	// APN of the PDP context; empty leaves AT+CGDCONT alone.
	APN string `toml:"apn"`
	// PDPType is IP, IPV6 or IPV4V6.
	PDPType string `toml:"pdp_type"`
	// CID is the PDP context the APN goes to and PPP dials (ATD*99***cid#).
	CID int `toml:"cid"`
	// Auth is none, pap or chap; Username and PasswordFile go with pap
	// and chap.
	Auth         string `toml:"auth"`
	Username     string `toml:"username"`
	PasswordFile string `toml:"password_file"`
	// PINFile holds the SIM PIN (a file, or a bare systemd credential
	// name); empty: the SIM must not ask for one.
	PINFile string `toml:"pin_file"`
	// RAT lists the access technologies in the order they are searched:
	// "lte-m", "nb-iot", "gsm"; empty leaves the modem's order alone.
	RAT []string `toml:"rat"`
	// Band masks in hex as AT+QCFG="band" takes them; empty leaves a mask
	// alone.
	GSMBands   string `toml:"gsm_bands"`
	LTEMBands  string `toml:"lte_m_bands"`
	NBIoTBands string `toml:"nb_iot_bands"`
	// Roaming is "" (leave alone), "allow" or "deny".
	Roaming string `toml:"roaming"`
	// Operator is "" (leave alone), "auto", or a numeric MCC+MNC for
	// manual selection.
	Operator string `toml:"operator"`
}

// DataConfig chooses who owns the data bearer.
type DataConfig struct {
	// Mode is "off" (nothing watched), "ppp" (the agent runs pppd on the
	// data port) or "external" (another program owns the data path and
	// the agent watches Interface).
	Mode string `toml:"mode"`
	// Port is the modem's data port (USB interface 3 on a BG96).
	Port string `toml:"port"`
	// Interface is the network interface of the bearer: ppp0 for pppd's
	// unit 0, or e.g. wwan0 for external.
	Interface string `toml:"interface"`
	// PPPD is the pppd binary.
	PPPD string `toml:"pppd"`
	// ConnectTimeout bounds the dial: chat's wait for CONNECT.
	ConnectTimeout Duration `toml:"connect_timeout"`
	// BackoffMin and BackoffMax space redials after a failure, doubling.
	BackoffMin Duration `toml:"backoff_min"`
	BackoffMax Duration `toml:"backoff_max"`
}

func defaultNetwork() NetworkConfig {
	return NetworkConfig{PDPType: "IP", CID: 1, Auth: "none", RAT: []string{}}
}

func defaultData() DataConfig {
	return DataConfig{
		Mode: "off", Port: "/dev/ttyBG96-data", Interface: "ppp0", PPPD: "/usr/sbin/pppd",
		ConnectTimeout: Duration{60 * time.Second},
		BackoffMin:     Duration{10 * time.Second}, BackoffMax: Duration{10 * time.Minute},
	}
}

// apnLabel is one label of an APN network identifier (3GPP TS 23.003
// §9.1): letters, digits and hyphens, not starting or ending with a hyphen.
var apnLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$`)

// ValidAPN says why apn is not an APN network identifier per 3GPP TS
// 23.003 §9.1, or "" when it is one.
func ValidAPN(apn string) string {
	if len(apn) > 100 {
		return "longer than 100 octets"
	}
	for _, l := range strings.Split(apn, ".") {
		if l == "" {
			return "has an empty label"
		}
		if len(l) > 63 {
			return "has a label longer than 63 octets"
		}
		if !apnLabel.MatchString(l) {
			return "labels take letters, digits and inner hyphens only"
		}
	}
	// §9.1.1: the network identifier must not start with these, which
	// are reserved for the operator identifier and DNS.
	low := strings.ToLower(apn)
	for _, p := range []string{"rac", "lac", "sgsn", "rnc"} {
		if strings.HasPrefix(low, p) && (len(low) == len(p) || low[len(p)] == '.') {
			return "must not start with the reserved label " + p
		}
	}
	if strings.HasSuffix(low, ".gprs") {
		return "must not end in .gprs (that is the operator identifier's)"
	}
	return ""
}

// RATs the BG96 knows, as [network].rat spells them.
const (
	RATLTEM  = "lte-m"
	RATNBIoT = "nb-iot"
	RATGSM   = "gsm"
)

// bandMask is a hex mask as AT+QCFG="band" prints it.
var bandMask = regexp.MustCompile(`^(0[xX])?[0-9A-Fa-f]{1,16}$`)

// ParseBandMask reads a hex band mask, with or without 0x.
func ParseBandMask(s string) (uint64, bool) {
	if !bandMask.MatchString(s) {
		return 0, false
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X"), 16, 64)
	return v, err == nil
}

// gsmBandsMax: AT+QCFG="band" takes GSM bands as 1 = 900, 2 = 1800,
// 4 = 850, 8 = 1900 MHz.
const gsmBandsMax uint64 = 0xF

// lteBandsOK is the set of LTE bands (bit n-1) the BG96 takes for LTE-M
// and NB-IoT in AT+QCFG="band": 1, 2, 3, 4,
// 5, 8, 12, 13, 14, 18, 19, 20, 25, 26, 28, 39.
const lteBandsOK uint64 = 1<<0 | 1<<1 | 1<<2 | 1<<3 | 1<<4 | 1<<7 | 1<<11 | 1<<12 | 1<<13 | 1<<17 | 1<<18 | 1<<19 | 1<<24 | 1<<25 | 1<<27 | 1<<38

var operatorID = regexp.MustCompile(`^[0-9]{5,6}$`)

func (n NetworkConfig) validate(bad badFunc) {
	if n.APN != "" {
		if why := ValidAPN(n.APN); why != "" {
			bad("network.apn", "%q is not an APN (3GPP TS 23.003 §9.1): %s", n.APN, why)
		}
	}
	switch n.PDPType {
	case "IP", "IPV6", "IPV4V6":
	default:
		bad("network.pdp_type", "%q: want IP, IPV6 or IPV4V6", n.PDPType)
	}
	if n.CID < 1 || n.CID > 15 {
		bad("network.cid", "%d: want 1 to 15 (the BG96's PDP contexts)", n.CID)
	}
	switch n.Auth {
	case "none":
		if n.Username != "" || n.PasswordFile != "" {
			bad("network.auth", "username and password_file need auth = \"pap\" or \"chap\"")
		}
	case "pap", "chap":
		if n.APN == "" {
			bad("network.apn", "must be set when auth is %s (AT+QICSGP writes them together)", n.Auth)
		}
		if n.Username == "" {
			bad("network.username", "must be set when auth is %s", n.Auth)
		}
	default:
		bad("network.auth", "%q: want none, pap or chap", n.Auth)
	}
	if len(n.Username) > 127 || strings.ContainsAny(n.Username, "\"\r\n") {
		bad("network.username", "at most 127 characters, without quotes or line breaks")
	}
	seen := map[string]bool{}
	for _, r := range n.RAT {
		switch r {
		case RATLTEM, RATNBIoT, RATGSM:
		default:
			bad("network.rat", "%q: want lte-m, nb-iot or gsm", r)
			continue
		}
		if seen[r] {
			bad("network.rat", "%q is listed twice", r)
		}
		seen[r] = true
	}
	masks := []struct {
		key, v string
		ok     uint64
	}{{"network.gsm_bands", n.GSMBands, gsmBandsMax}, {"network.lte_m_bands", n.LTEMBands, lteBandsOK}, {"network.nb_iot_bands", n.NBIoTBands, lteBandsOK}}
	for _, m := range masks {
		if m.v == "" {
			continue
		}
		v, ok := ParseBandMask(m.v)
		switch {
		case !ok:
			bad(m.key, "%q is not a hex band mask (e.g. 0x80084)", m.v)
		case v == 0:
			bad(m.key, "0 would leave no band: leave the key out to keep the modem's")
		case v&^m.ok != 0:
			bad(m.key, "%s: the BG96 has no band in 0x%x", m.v, v&^m.ok)
		}
	}
	switch n.Roaming {
	case "", "allow", "deny":
	default:
		bad("network.roaming", "%q: want allow or deny (or leave it out)", n.Roaming)
	}
	if n.Operator != "" && n.Operator != "auto" && !operatorID.MatchString(n.Operator) {
		bad("network.operator", "%q: want auto or a numeric MCC+MNC such as 26201", n.Operator)
	}
}

var ifName = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,15}$`)

func (d DataConfig) validate(bad badFunc) {
	switch d.Mode {
	case "off", "external":
	case "ppp":
		if !strings.HasPrefix(d.Port, "/") {
			bad("data.port", "%q: want a device path such as /dev/ttyBG96-data", d.Port)
		}
		if !strings.HasPrefix(d.PPPD, "/") {
			bad("data.pppd", "%q: want an absolute path such as /usr/sbin/pppd", d.PPPD)
		}
		if !strings.HasPrefix(d.Interface, "ppp") {
			bad("data.interface", "%q: pppd names its interface pppN", d.Interface)
		} else if _, err := strconv.Atoi(d.Interface[3:]); err != nil {
			bad("data.interface", "%q: pppd names its interface pppN", d.Interface)
		}
	default:
		bad("data.mode", "%q: want off, ppp or external", d.Mode)
	}
	if !ifName.MatchString(d.Interface) || strings.Contains(d.Interface, "/") {
		bad("data.interface", "%q is not an interface name (at most 15 characters)", d.Interface)
	}
	if d.ConnectTimeout.Duration < time.Second || d.ConnectTimeout.Duration > 10*time.Minute {
		bad("data.connect_timeout", "%s: want 1s to 10m", d.ConnectTimeout.Duration)
	}
	if d.BackoffMin.Duration < time.Second || d.BackoffMin.Duration > time.Hour {
		bad("data.backoff_min", "%s: want 1s to 1h", d.BackoffMin.Duration)
	}
	if d.BackoffMax.Duration < d.BackoffMin.Duration || d.BackoffMax.Duration > 24*time.Hour {
		bad("data.backoff_max", "%s: want backoff_min to 24h", d.BackoffMax.Duration)
	}
}
