package port

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sysfs builds a tree laid out as the kernel does: devices live under
// /sys/devices/<bus path>/usbN/<dev>/<dev>:<config>.<interface>, and
// /sys/bus/usb/devices holds relative symlinks to both devices and
// interfaces.
type sysfs struct {
	t    *testing.T
	root string
}

func newSysfs(t *testing.T) *sysfs {
	s := &sysfs{t: t, root: t.TempDir()}
	s.mkdir("bus/usb/devices")
	s.device("usb1", "1d6b", "0002") // root hub
	s.iface("usb1", "1-0:1.0", "09")
	return s
}

func (s *sysfs) mkdir(rel string) string {
	s.t.Helper()
	p := filepath.Join(s.root, rel)
	if err := os.MkdirAll(p, 0o755); err != nil {
		s.t.Fatal(err)
	}
	return p
}

func (s *sysfs) write(rel, content string) {
	s.t.Helper()
	if err := os.WriteFile(filepath.Join(s.root, rel), []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

const usbBus = "devices/pci0000:00/0000:00:14.0/usb1"

func (s *sysfs) link(name, target string) {
	s.t.Helper()
	if err := os.Symlink(filepath.Join("../../..", target), filepath.Join(s.root, "bus/usb/devices", name)); err != nil {
		s.t.Fatal(err)
	}
}

// devPath is where the kernel puts a device: behind its parent hub.
func devPath(dev string) string {
	if dev == "usb1" {
		return usbBus
	}
	p := usbBus
	if parent, _, ok := strings.Cut(dev, "."); ok {
		p += "/" + parent
	}
	return p + "/" + dev
}

// device adds a USB device; an empty id leaves its file out.
func (s *sysfs) device(dev, vid, pid string) {
	rel := devPath(dev)
	s.mkdir(rel)
	if vid != "" {
		s.write(rel+"/idVendor", vid+"\n")
	}
	if pid != "" {
		s.write(rel+"/idProduct", pid+"\n")
	}
	s.link(dev, rel)
}

// iface adds an interface of dev with the given bInterfaceNumber file
// content; ttys are created as the option driver does (ttyUSBn/tty/ttyUSBn).
func (s *sysfs) iface(dev, name, number string, ttys ...string) string {
	rel := devPath(dev) + "/" + name
	s.mkdir(rel)
	if number != "" {
		s.write(rel+"/bInterfaceNumber", number+"\n")
	}
	for _, tty := range ttys {
		s.mkdir(rel + "/" + tty + "/tty/" + tty)
	}
	s.link(name, rel)
	return rel
}

// bg96 adds a BG96 with its five interfaces; the option driver makes ttys
// of the first four, numbered from first.
func (s *sysfs) bg96(dev string, first int) {
	s.device(dev, "2c7c", "0296")
	for i := range 5 {
		var ttys []string
		if i < 4 {
			ttys = []string{fmt.Sprintf("ttyUSB%d", first+i)}
		}
		s.iface(dev, fmt.Sprintf("%s:1.%d", dev, i), fmt.Sprintf("%02x", i), ttys...)
	}
}

func TestFindBG96(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(*sysfs)
		want  string
	}{
		{"alone", func(s *sysfs) { s.bg96("1-1", 0) }, "/dev/ttyUSB2"},
		{"among other devices", func(s *sysfs) {
			s.device("1-2", "0bda", "8153") // USB Ethernet
			s.iface("1-2", "1-2:1.0", "00")
			s.bg96("1-1", 0)
		}, "/dev/ttyUSB2"},
		{"behind a hub, after another serial adapter", func(s *sysfs) {
			s.device("1-1", "0424", "2514")
			s.device("1-1.1", "0403", "6001") // FTDI: ttyUSB0
			s.iface("1-1.1", "1-1.1:1.0", "00", "ttyUSB0")
			s.bg96("1-1.3", 1)
		}, "/dev/ttyUSB3"},
		{"upper-case ids", func(s *sysfs) {
			s.device("1-1", "2C7C", "0296")
			s.iface("1-1", "1-1:1.2", "02", "ttyUSB2")
		}, "/dev/ttyUSB2"},
		{"tty under tty/", func(s *sysfs) {
			s.device("1-1", "2c7c", "0296")
			rel := s.iface("1-1", "1-1:1.2", "02")
			s.mkdir(rel + "/tty/ttyUSB2")
		}, "/dev/ttyUSB2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSysfs(t)
			tc.build(s)
			got, err := Find(s.root)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Find = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFindErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(*sysfs)
		is    error
		want  []string
	}{
		{"no USB devices", func(*sysfs) {}, ErrNotFound, []string{"no USB devices in"}},
		{"other modems only", func(s *sysfs) {
			s.device("1-1", "2c7c", "0125") // EC25
			s.iface("1-1", "1-1:1.2", "02", "ttyUSB2")
			s.device("1-2", "0bda", "8153")
		}, ErrNotFound, []string{"no USB 2c7c:0296", "seen: 1-1 2c7c:0125, 1-2 0bda:8153"}},
		{"two BG96", func(s *sysfs) {
			s.bg96("1-1", 0)
			s.bg96("1-2", 4)
		}, ErrAmbiguous, []string{"USB 1-1: /dev/ttyUSB2", "USB 1-2: /dev/ttyUSB6", "set [modem] port"}},
		{"two BG96, one without driver", func(s *sysfs) {
			s.bg96("1-1", 0)
			s.device("1-2", "2c7c", "0296")
			s.iface("1-2", "1-2:1.2", "02")
		}, ErrAmbiguous, []string{"USB 1-1: /dev/ttyUSB2", "USB 1-2: interface 1-2:1.2 has no tty"}},
		{"driver not bound", func(s *sysfs) {
			s.device("1-1", "2c7c", "0296")
			s.iface("1-1", "1-1:1.0", "00")
			s.iface("1-1", "1-1:1.2", "02")
		}, ErrNotFound, []string{"BG96 at USB 1-1: interface 1-1:1.2 has no tty (is the option driver loaded?)"}},
		{"no AT interface", func(s *sysfs) {
			s.device("1-1", "2c7c", "0296")
			s.iface("1-1", "1-1:1.0", "00", "ttyUSB0")
			s.iface("1-1", "1-1:1.1", "01", "ttyUSB1")
		}, ErrNotFound, []string{"no interface 2 among 1-1:1.0, 1-1:1.1"}},
		{"no interfaces yet", func(s *sysfs) {
			s.device("1-1", "2c7c", "0296")
		}, ErrNotFound, []string{"USB 1-1: no interfaces"}},
		{"two ttys on one interface", func(s *sysfs) {
			s.device("1-1", "2c7c", "0296")
			s.iface("1-1", "1-1:1.2", "02", "ttyUSB2", "ttyUSB3")
		}, ErrNotFound, []string{"several ttys: ttyUSB2, ttyUSB3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSysfs(t)
			tc.build(s)
			got, err := Find(s.root)
			if !errors.Is(err, tc.is) {
				t.Fatalf("Find = %q, %v; want %v", got, err, tc.is)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// A tree that is not what the kernel makes (half-written, a foreign
// mount, a fake) gives an error that says what was wrong, never a panic
// and never a path built from garbage.
func TestFindBadTree(t *testing.T) {
	t.Run("no sysfs", func(t *testing.T) {
		_, err := Find(filepath.Join(t.TempDir(), "nowhere"))
		if err == nil || !strings.Contains(err.Error(), "bus/usb/devices") || !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("err = %v", err)
		}
	})
	for _, tc := range []struct {
		name  string
		build func(*sysfs)
		want  []string
	}{
		{"missing and garbage ids", func(s *sysfs) {
			s.device("1-1", "", "0296")
			s.device("1-2", "2c7c", "")
			s.device("1-3", "zz\x00top", "0296")
			s.device("1-4", strings.Repeat("2c7c", 1<<16), "0296")
		}, []string{
			"1-1 (idVendor: no such file or directory)",
			"1-2 (idProduct: no such file or directory)",
			`1-3 (idVendor "zz\x00top" is not a USB id)`,
			`1-4 (idVendor "2c7c2c7c2c7c2c7c2c7c2c7c2c7c2c7c" is not a USB id)`,
		}},
		{"dangling link", func(s *sysfs) {
			s.link("1-5", "devices/gone")
		}, []string{"1-5 (idVendor: no such file or directory; idProduct: no such file or directory)"}},
		{"garbage interface numbers", func(s *sysfs) {
			s.device("1-1", "2c7c", "0296")
			s.iface("1-1", "1-1:1.0", "", "ttyUSB0")
			s.iface("1-1", "1-1:1.2", "two", "ttyUSB2")
		}, []string{"1-1:1.0 (bInterfaceNumber: no such file or directory)", `1-1:1.2 (bInterfaceNumber "two")`}},
		{"not a tty", func(s *sysfs) {
			s.device("1-1", "2c7c", "0296")
			rel := s.iface("1-1", "1-1:1.2", "02")
			s.mkdir(rel + "/ttyUSB")
			s.mkdir(rel + "/tty/..ttyUSB2")
			s.mkdir(rel + "/power")
		}, []string{"interface 1-1:1.2 has no tty"}},
		{"interface is a file", func(s *sysfs) {
			s.device("1-1", "2c7c", "0296")
			s.write(devPath("1-1")+"/bInterfaceNumber", "02\n")
			s.link("1-1:1.2", devPath("1-1")+"/bInterfaceNumber")
		}, []string{"1-1:1.2 (bInterfaceNumber: not a directory)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSysfs(t)
			tc.build(s)
			got, err := Find(s.root)
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("Find = %q, %v; want ErrNotFound", got, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// sysfs prints bInterfaceNumber in hex: "0a" is interface 10, not garbage.
func TestFindInterfaceNumberIsHex(t *testing.T) {
	s := newSysfs(t)
	s.device("1-1", "2c7c", "0296")
	s.iface("1-1", "1-1:1.10", "0a")
	_, err := Find(s.root)
	if !errors.Is(err, ErrNotFound) || !strings.HasSuffix(err.Error(), "no interface 2 among 1-1:1.10") {
		t.Fatalf("err = %v", err)
	}
}
