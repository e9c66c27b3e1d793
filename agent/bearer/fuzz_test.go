package bearer

import (
	"net/netip"
	"strings"
	"testing"
)

// FuzzPPPLog feeds pppd's output (outside input: whatever pppd, its
// plugins and the peer's options make it print) to the log reader: it
// never panics, and what it takes for the local address and the DNS
// servers are addresses, at most four servers.
func FuzzPPPLog(f *testing.F) {
	f.Fuzz(func(t *testing.T, out string) {
		var l pppLog
		l.read(strings.NewReader(out), func(string) {})
		dns, _ := l.snapshot()
		if len(dns) > 4 {
			t.Fatalf("%d DNS servers kept", len(dns))
		}
		for _, d := range append(dns, l.local) {
			if _, err := netip.ParseAddr(d); d != "" && err != nil {
				t.Fatalf("%q taken as an address from %q", d, out)
			}
		}
	})
}
