package firmware

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"cellagent/modem/bg96emu"
	"cellagent/modem/bg96emu/bg96emutest"
)

// TestQemuStatus runs the packaged ARM binaries, under qemu-user, against
// the BG96 simulator's pseudo-terminal: the serial port code (termios
// ioctls differ between 32- and 64-bit ARM) and the AT engine work on the
// gateways' machines, not only on the build machine.
func TestQemuStatus(t *testing.T) {
	_, roots := packages(t)
	for _, c := range []struct{ arch, qemu string }{
		{"armhf", "qemu-arm-static"},
		{"arm64", "qemu-aarch64-static"},
	} {
		t.Run(c.arch, func(t *testing.T) {
			qemu := need(t, c.qemu, "qemu-user-static")
			bin := filepath.Join(roots[c.arch], "usr/bin/cellagent")

			if out := run(t, "", nil, qemu, bin, "version"); out != "cellagent "+testVersion+"\n" {
				t.Errorf("version printed %q, want cellagent %s", out, testVersion)
			}

			// Each arch gets its own modem, with an IMEI of its own, so an
			// answer cannot come from a stale simulator.
			imei := map[string]string{"armhf": "866425030000011", "arm64": "866425030000029"}[c.arch]
			m := bg96emutest.Start(t, bg96emu.Config{IMEI: imei, Baud: bg96emu.NoPacing})

			out := run(t, "", nil, qemu, bin, "status", "--port", m.PTY(), "--json")
			var st struct {
				Identity struct {
					IMEI, ICCID string
				}
				Registered bool
				Errors     map[string]string
			}
			if err := json.Unmarshal([]byte(out), &st); err != nil {
				t.Fatalf("status --json printed %q: %v", out, err)
			}
			if st.Identity.IMEI != imei || st.Identity.ICCID != m.ICCID() {
				t.Errorf("identity %+v, want IMEI %s ICCID %s", st.Identity, imei, m.ICCID())
			}
			if !st.Registered || len(st.Errors) > 0 {
				t.Errorf("registered %v, errors %v", st.Registered, st.Errors)
			}
		})
	}
}
