package firmware

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestUdevRulesLevels guards the mistake the first version of the rules
// made: udev matches all ATTRS keys of one rule against a single ancestor,
// and the BG96's USB ids live on the USB device while bInterfaceNumber
// lives on its interface, so a rule naming both never fires and the
// /dev/ttyBG96 link never appears.
func TestUdevRulesLevels(t *testing.T) {
	data, err := os.ReadFile("99-cellagent-bg96.rules")
	if err != nil {
		t.Fatal(err)
	}
	device := map[string]bool{"idVendor": true, "idProduct": true, "serial": true, "manufacturer": true, "product": true, "bcdDevice": true}
	iface := map[string]bool{"bInterfaceNumber": true, "bInterfaceClass": true, "bInterfaceSubClass": true, "bInterfaceProtocol": true}
	attrs := regexp.MustCompile(`ATTRS\{([^}]+)\}`)
	links := map[string]bool{}
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var dev, ifc []string
		for _, m := range attrs.FindAllStringSubmatch(line, -1) {
			switch {
			case device[m[1]]:
				dev = append(dev, m[1])
			case iface[m[1]]:
				ifc = append(ifc, m[1])
			}
		}
		if len(dev) > 0 && len(ifc) > 0 {
			t.Errorf("line %d tests %v (USB device) and %v (interface) in one rule; it can never match:\n%s", n+1, dev, ifc, line)
		}
		for _, m := range regexp.MustCompile(`bInterfaceNumber\}=="(\d\d)".*SYMLINK\+="([^"]+)"`).FindAllStringSubmatch(line, -1) {
			links[m[1]+" "+m[2]] = true
		}
	}
	for _, want := range []string{"01 ttyBG96-nmea", "02 ttyBG96", "03 ttyBG96-data"} {
		if !links[want] {
			t.Errorf("no rule links interface %s", want)
		}
	}
	if !strings.Contains(string(data), `ATTRS{idVendor}=="2c7c", ATTRS{idProduct}=="0296", ENV{ID_MM_DEVICE_IGNORE}="1"`) {
		t.Error("ModemManager is not told to ignore the BG96")
	}
}
