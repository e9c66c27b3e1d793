package power

import (
	"fmt"
	"strings"

	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"

	// Only the Linux GPIO character device. periph.io/x/host/v3 would also
	// bring register-level drivers for a dozen SoCs, which a gateway does
	// not need, and about 0.5 MB more in the ARM binary.
	_ "periph.io/x/host/v3/gpioioctl"
)

// Names mirror the [power] section of the configuration: GPIO line names
// as the kernel reports them (gpioinfo), e.g. "GPIO17" on a Raspberry Pi.
// An empty name leaves that line unwired.
type Names struct {
	PWRKey, ResetN, Supply string
	Inverted               bool
}

// Open looks the lines up through the Linux GPIO character device (ABI v2,
// Linux 5.10 or later) and returns a Controller for them. A line stays
// claimed by this process from its first use, so no other program can
// move it meanwhile. With no names at all Open touches no GPIO and every
// operation returns ErrNotConfigured, so the daemon needs no special case
// for a board without wiring.
func Open(n Names, opts ...Option) (*Controller, error) {
	p := Pins{Inverted: n.Inverted}
	if n.PWRKey == "" && n.ResetN == "" && n.Supply == "" {
		return New(p, opts...)
	}
	st, err := driverreg.Init()
	if err != nil {
		return nil, fmt.Errorf("power: GPIO drivers: %w", err)
	}
	for _, w := range []struct {
		role, name string
		pin        *gpio.PinOut
	}{
		{"PWRKEY", n.PWRKey, &p.PWRKey},
		{"RESET_N", n.ResetN, &p.ResetN},
		{"supply", n.Supply, &p.Supply},
	} {
		if w.name == "" {
			continue
		}
		pin := gpioreg.ByName(w.name)
		if pin == nil {
			return nil, fmt.Errorf("power: %s: GPIO line %q not found (%s)", w.role, w.name, available(st))
		}
		*w.pin = pin
	}
	return New(p, opts...)
}

// available says what an operator can choose from, or why there is nothing.
func available(st *driverreg.State) string {
	var names []string
	for _, p := range gpioreg.All() {
		names = append(names, p.Name())
	}
	if len(names) > 0 {
		const show = 40
		if len(names) > show {
			names = append(names[:show], fmt.Sprintf("and %d more", len(names)-show))
		}
		return "lines: " + strings.Join(names, ", ")
	}
	var why []string
	for _, f := range append(st.Failed, st.Skipped...) {
		why = append(why, f.String())
	}
	if len(why) == 0 {
		return "no GPIO lines found"
	}
	return "no GPIO lines: " + strings.Join(why, "; ")
}
