package port

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// SysfsRoot is where Linux mounts sysfs; tests pass a tree of their own.
const SysfsRoot = "/sys"

// The BG96 enumerates as 2c7c:0296 with interfaces 0 DM, 1 NMEA, 2 AT,
// 3 PPP modem and 4 network; the option driver makes a tty of 0–3. The
// ttyUSB numbers depend on what else is plugged in, so only the interface
// number identifies the AT port. Other Quectel modules (the BG95 is
// 2c7c:0700, with its network interface at 3) lay their interfaces out
// differently and are not matched.
const (
	bg96Vendor      = "2c7c"
	bg96Product     = "0296"
	bg96ATInterface = 2
)

var (
	// ErrNotFound means no BG96 with a usable AT port is attached; right
	// after a power-on it is normal for a few seconds.
	ErrNotFound = errors.New("no BG96 AT port found")
	// ErrAmbiguous means several BG96 are attached; Find picks none,
	// because talking to the wrong one would be worse than not starting.
	ErrAmbiguous = errors.New("several BG96 found")
)

// Find returns the device path of the BG96's AT port, e.g. /dev/ttyUSB2,
// by looking through sysfsRoot/bus/usb/devices for the modem's USB ids and
// the tty of its AT interface. The errors list what was looked at, so an
// operator can tell a missing modem from a missing driver.
func Find(sysfsRoot string) (string, error) {
	dir := filepath.Join(sysfsRoot, "bus", "usb", "devices")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("port: find BG96: %w", err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	var seen, found, broken []string
	var tty string
	for _, dev := range names {
		// Interfaces carry a colon; root hubs are the kernel's own.
		if strings.Contains(dev, ":") || strings.HasPrefix(dev, "usb") {
			continue
		}
		vid, verr := readID(filepath.Join(dir, dev, "idVendor"))
		pid, perr := readID(filepath.Join(dir, dev, "idProduct"))
		if err := errors.Join(verr, perr); err != nil {
			seen = append(seen, fmt.Sprintf("%s (%v)", dev, strings.ReplaceAll(err.Error(), "\n", "; ")))
			continue
		}
		seen = append(seen, dev+" "+vid+":"+pid)
		if vid != bg96Vendor || pid != bg96Product {
			continue
		}
		t, err := atTTY(dir, dev, names)
		if err != nil {
			broken = append(broken, fmt.Sprintf("USB %s: %v", dev, err))
			continue
		}
		tty = t
		found = append(found, fmt.Sprintf("USB %s: /dev/%s", dev, t))
	}
	switch {
	case len(found)+len(broken) > 1:
		return "", fmt.Errorf("port: %w (%s); set [modem] port to the one to use", ErrAmbiguous, strings.Join(append(found, broken...), ", "))
	case len(found) == 1:
		return "/dev/" + tty, nil
	case len(broken) == 1:
		return "", fmt.Errorf("port: %w: BG96 at %s", ErrNotFound, broken[0])
	case len(seen) == 0:
		return "", fmt.Errorf("port: %w: no USB devices in %s", ErrNotFound, dir)
	}
	return "", fmt.Errorf("port: %w: no USB %s:%s in %s; seen: %s", ErrNotFound, bg96Vendor, bg96Product, dir, strings.Join(seen, ", "))
}

// atTTY finds the tty of dev's AT interface among the interface entries
// ("<dev>:<config>.<interface>") next to it.
func atTTY(dir, dev string, names []string) (string, error) {
	var ifaces []string
	for _, name := range names {
		if !strings.HasPrefix(name, dev+":") {
			continue
		}
		raw, err := readAttr(filepath.Join(dir, name, "bInterfaceNumber"))
		if err != nil {
			ifaces = append(ifaces, fmt.Sprintf("%s (%v)", name, err))
			continue
		}
		n, err := strconv.ParseUint(raw, 16, 8)
		if err != nil {
			ifaces = append(ifaces, fmt.Sprintf("%s (bInterfaceNumber %q)", name, raw))
			continue
		}
		if n != bg96ATInterface {
			ifaces = append(ifaces, name)
			continue
		}
		ttys, err := ttysIn(filepath.Join(dir, name))
		if err != nil {
			return "", fmt.Errorf("interface %s: %w", name, err)
		}
		switch len(ttys) {
		case 1:
			return ttys[0], nil
		case 0:
			return "", fmt.Errorf("interface %s has no tty (is the option driver loaded?)", name)
		}
		return "", fmt.Errorf("interface %s has several ttys: %s", name, strings.Join(ttys, ", "))
	}
	if len(ifaces) == 0 {
		return "", errors.New("no interfaces")
	}
	return "", fmt.Errorf("no interface %d among %s", bg96ATInterface, strings.Join(ifaces, ", "))
}

// ttyName keeps whatever else sysfs holds out of the device path.
var ttyName = regexp.MustCompile(`^tty[A-Za-z]+[0-9]+$`)

// ttysIn lists the ttys of a USB interface: usb-serial drivers such as
// option put a ttyUSBn directory in the interface, cdc-acm a tty/ttyACMn.
func ttysIn(iface string) ([]string, error) {
	var ttys []string
	for _, sub := range []string{iface, filepath.Join(iface, "tty")} {
		entries, err := os.ReadDir(sub)
		if err != nil {
			if sub != iface && errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, err
		}
		for _, e := range entries {
			if ttyName.MatchString(e.Name()) && !slices.Contains(ttys, e.Name()) {
				ttys = append(ttys, e.Name())
			}
		}
	}
	return ttys, nil
}

var usbID = regexp.MustCompile(`^[0-9a-f]{4}$`)

func readID(path string) (string, error) {
	s, err := readAttr(path)
	if err != nil {
		return "", err
	}
	s = strings.ToLower(s)
	if !usbID.MatchString(s) {
		return "", fmt.Errorf("%s %q is not a USB id", filepath.Base(path), s)
	}
	return s, nil
}

// readAttr reads a sysfs attribute; the limit keeps a corrupt or foreign
// tree from feeding us a large file.
func readAttr(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		// The path is in the caller's message already; keep the reason.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 32))
	if err != nil {
		return "", fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return strings.TrimSpace(string(b)), nil
}
