package bearer

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const netnsChild = "CELLAGENT_BEARER_NETNS"

// The kernel's word on an interface is the bearer's evidence: a real TUN
// interface in a network namespace the test creates, brought up and down
// by attaching and detaching its file descriptor. Polling is set to an
// hour, so every change must arrive over rtnetlink. The test re-runs
// itself inside the namespace (ip netns exec), so nothing touches the
// host's interfaces.
func TestExternalBearerFollowsKernel(t *testing.T) {
	if os.Getenv(netnsChild) != "" {
		externalInNamespace(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for ip netns and TUN")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (iproute2) not installed")
	}
	ns := fmt.Sprintf("cellagent-bearer-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v: %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run", "^TestExternalBearerFollowsKernel$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), netnsChild+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("in namespace %s:\n%s", ns, out)
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("the test in the namespace failed: %v", err)
	}
}

func sh(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v: %s", args, err, out)
	}
}

// attachTUN opens the persistent TUN interface name: the kernel then
// reports a carrier (IFF_RUNNING) until the descriptor is closed.
func attachTUN(t *testing.T, name string) *os.File {
	t.Helper()
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		t.Fatal(err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		t.Fatalf("TUNSETIFF: %v", err)
	}
	return os.NewFile(uintptr(fd), "tun")
}

func externalInNamespace(t *testing.T) {
	sh(t, "ip", "link", "set", "lo", "up")
	sh(t, "ip", "tuntap", "add", "dev", "wwan0", "mode", "tun")
	sh(t, "ip", "addr", "add", "10.99.0.1/30", "dev", "wwan0")
	sh(t, "ip", "link", "set", "wwan0", "up")
	ev := &events{}
	b := New(Config{Mode: ModeExternal, Interface: "wwan0", Poll: time.Hour, OnEvent: ev.add})
	runBearer(t, b)
	waitFor(t, "the first reading", 5*time.Second, func() bool { return b.Snapshot().State == StateDown })
	if up, why := b.Evidence(); up == nil || *up || why != "wwan0 is down" {
		t.Errorf("no carrier: evidence %v %q", up, why)
	}

	start := time.Now()
	tun := attachTUN(t, "wwan0")
	waitFor(t, "up", 5*time.Second, func() bool { return b.Snapshot().State == StateUp })
	t.Logf("up seen %s after the carrier came", time.Since(start).Round(time.Millisecond))
	s := b.Snapshot()
	if !s.LinkUp || len(s.Addresses) == 0 || s.Addresses[0] != "10.99.0.1/30" || s.UpSince.IsZero() {
		t.Errorf("up: %+v", s)
	}
	if up, _ := b.Evidence(); up == nil || !*up {
		t.Errorf("up: evidence %v", up)
	}
	// Traffic: a UDP datagram routed out of wwan0 counts as tx, an IPv4
	// packet written into the TUN device counts as rx.
	c, err := net.Dial("udp", "10.99.0.2:9")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write(make([]byte, 100))
	c.Close()
	// TUN counts a packet as sent when its reader takes it; IPv6 router
	// solicitations may come first.
	buf := make([]byte, 2048)
	for n := 0; n != 128; {
		if n, err = tun.Read(buf); err != nil {
			t.Fatalf("read from TUN: %v", err)
		}
	}
	pkt := ipv4UDP([4]byte{10, 99, 0, 2}, [4]byte{10, 99, 0, 1}, 64)
	if _, err := tun.Write(pkt); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "counters", 5*time.Second, func() bool { s := b.Snapshot(); return s.TxBytes >= 128 && s.RxBytes >= uint64(len(pkt)) })
	s = b.Snapshot()
	t.Logf("counters: rx %d tx %d bytes", s.RxBytes, s.TxBytes)

	start = time.Now()
	tun.Close()
	waitFor(t, "down", 5*time.Second, func() bool { return b.Snapshot().State == StateDown })
	t.Logf("down seen %s after the carrier went", time.Since(start).Round(time.Millisecond))
	// The state changes first, the failure is recorded just after.
	waitFor(t, "the down evidence", 5*time.Second, func() bool {
		up, why := b.Evidence()
		return up != nil && !*up && why == "wwan0 is down; last failure: wwan0 went down"
	})
	sh(t, "ip", "link", "del", "wwan0")
	waitFor(t, "gone", 5*time.Second, func() bool { _, why := b.Evidence(); return strings.HasPrefix(why, "wwan0 does not exist;") })
	if ev.count("warn") != 1 {
		t.Errorf("events: %s", ev)
	}
}

// ipv4UDP builds an IPv4 packet carrying an empty-checksum UDP datagram
// of n payload bytes.
func ipv4UDP(src, dst [4]byte, n int) []byte {
	p := make([]byte, 28+n)
	p[0], p[8], p[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	copy(p[12:], src[:])
	copy(p[16:], dst[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(p[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(p[20:], 40000)
	binary.BigEndian.PutUint16(p[22:], 9)
	binary.BigEndian.PutUint16(p[24:], uint16(8+n))
	return p
}
