package config

import (
	"strings"
	"testing"
)

func TestNetworkAndDataProblems(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"[network]\napn = \"internet..m2m\"\n", "line 2: network.apn: \"internet..m2m\" is not an APN (3GPP TS 23.003 §9.1): has an empty label"},
		{"[network]\napn = \"inter_net\"\n", "line 2: network.apn: \"inter_net\" is not an APN"},
		{"[network]\napn = \"-web\"\n", "network.apn"},
		{"[network]\napn = \"" + strings.Repeat("a.", 50) + "b\"\n", "longer than 100 octets"},
		{"[network]\napn = \"rac1.example\"\n", ""},
		{"[network]\napn = \"rac.example\"\n", "reserved label rac"},
		{"[network]\napn = \"web.mnc001.mcc262.gprs\"\n", "must not end in .gprs"},
		{"[network]\npdp_type = \"ip\"\n", "line 2: network.pdp_type: \"ip\": want IP, IPV6 or IPV4V6"},
		{"[network]\ncid = 16\n", "line 2: network.cid: 16"},
		{"[network]\napn = \"web\"\nauth = \"pap\"\n", "network.username: must be set when auth is pap"},
		{"[network]\nauth = \"chap\"\nusername = \"u\"\n", "network.apn: must be set when auth is chap"},
		{"[network]\nauth = \"md5\"\n", "line 2: network.auth: \"md5\""},
		{"[network]\nusername = \"u\"\n", "network.auth: username and password_file need"},
		{"[network]\nrat = [\"lte-m\", \"5g\"]\n", "line 2: network.rat: \"5g\""},
		{"[network]\nrat = [\"gsm\", \"gsm\"]\n", "network.rat: \"gsm\" is listed twice"},
		{"[network]\nlte_m_bands = \"0xZZ\"\n", "line 2: network.lte_m_bands: \"0xZZ\" is not a hex band mask"},
		{"[network]\nlte_m_bands = \"0\"\n", "0 would leave no band"},
		{"[network]\nnb_iot_bands = \"0x20\"\n", "network.nb_iot_bands: 0x20: the BG96 has no band in 0x20"},
		{"[network]\ngsm_bands = \"0x10\"\n", "network.gsm_bands: 0x10: the BG96 has no band in 0x10"},
		{"[network]\nroaming = \"yes\"\n", "line 2: network.roaming"},
		{"[network]\noperator = \"Telekom\"\n", "line 2: network.operator"},
		{"[network]\npin = \"1234\"\n", "line 2: network.pin: unknown key"},
		{"[data]\nmode = \"dhcp\"\n", "line 2: data.mode: \"dhcp\": want off, ppp or external"},
		{"[data]\nmode = \"ppp\"\ninterface = \"wwan0\"\n", "line 3: data.interface: \"wwan0\": pppd names its interface pppN"},
		{"[data]\nmode = \"ppp\"\nport = \"ttyUSB3\"\n", "line 3: data.port"},
		{"[data]\nmode = \"external\"\ninterface = \"a/b\"\n", "data.interface: \"a/b\" is not an interface name"},
		{"[data]\nbackoff_min = \"1m\"\nbackoff_max = \"30s\"\n", "line 3: data.backoff_max"},
		{"[data]\nconnect_timeout = \"1h\"\n", "line 2: data.connect_timeout"},
	} {
		_, err := Parse([]byte(c.in), "gw.toml")
		if c.want == "" {
			if err != nil {
				t.Errorf("%q: %v", c.in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q:\n got %v\nwant %q", c.in, err, c.want)
		}
	}
}

func TestNetworkProfileParses(t *testing.T) {
	in := `[network]
apn = "Internet.M2M"
pdp_type = "IPV4V6"
auth = "chap"
username = "gw"
password_file = "apn-password"
pin_file = "sim-pin"
rat = ["lte-m", "nb-iot"]
lte_m_bands = "0x80084"
nb_iot_bands = "0X80084"
roaming = "deny"
operator = "26201"

[data]
mode = "ppp"
interface = "ppp1"
`
	cfg, err := Parse([]byte(in), "gw.toml")
	if err != nil {
		t.Fatal(err)
	}
	n := cfg.Network
	if n.APN != "Internet.M2M" || n.CID != 1 || len(n.RAT) != 2 || n.Roaming != "deny" || cfg.Data.Interface != "ppp1" || cfg.Data.Port != "/dev/ttyBG96-data" {
		t.Errorf("parsed %+v %+v", n, cfg.Data)
	}
	if v, ok := ParseBandMask(n.NBIoTBands); !ok || v != 0x80084 {
		t.Errorf("band mask %q = %x, %v", n.NBIoTBands, v, ok)
	}
}
