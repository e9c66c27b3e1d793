package bearer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Link is an interface as the kernel reports it.
type Link struct {
	Exists bool
	// Up: administratively up and running (IFF_UP and IFF_RUNNING, read
	// over rtnetlink by the net package).
	Up        bool
	Addresses []string
	RxBytes   uint64
	TxBytes   uint64
}

// ReadLink asks the kernel about interface name: flags and addresses
// over rtnetlink (RTM_GETLINK, RTM_GETADDR, as net.InterfaceByName
// does on Linux), byte counters from sysfs, which reads the same
// rtnl_link_stats the kernel keeps.
func ReadLink(name string) (Link, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		var nerr *net.OpError
		if errors.As(err, &nerr) || strings.Contains(err.Error(), "no such network interface") {
			return Link{}, nil
		}
		return Link{}, fmt.Errorf("bearer: read %s: %w", name, err)
	}
	l := Link{Exists: true, Up: ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagRunning != 0}
	addrs, err := ifi.Addrs()
	if err != nil {
		return l, fmt.Errorf("bearer: addresses of %s: %w", name, err)
	}
	for _, a := range addrs {
		l.Addresses = append(l.Addresses, a.String())
	}
	l.RxBytes = counter(name, "rx_bytes")
	l.TxBytes = counter(name, "tx_bytes")
	return l, nil
}

func counter(ifname, what string) uint64 {
	b, err := os.ReadFile(filepath.Join("/sys/class/net", ifname, "statistics", what))
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return v
}

// watchKernel calls wake for every link or address change the kernel
// announces (rtnetlink multicast groups), until ctx ends. It returns an
// error only when the socket cannot be opened; the caller then polls.
func watchKernel(ctx context.Context, wake func()) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("bearer: netlink socket: %w", err)
	}
	sa := &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return fmt.Errorf("bearer: netlink bind: %w", err)
	}
	// Non-blocking, through the runtime poller: closing the file ends
	// a pending Read when ctx ends.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return fmt.Errorf("bearer: netlink: %w", err)
	}
	f := os.NewFile(uintptr(fd), "netlink")
	stop := context.AfterFunc(ctx, func() { f.Close() })
	go func() {
		defer stop()
		buf := make([]byte, 1<<16)
		for {
			n, err := f.Read(buf)
			if err != nil || ctx.Err() != nil {
				return
			}
			msgs, err := syscall.ParseNetlinkMessage(buf[:n])
			if err != nil {
				continue
			}
			for _, m := range msgs {
				switch m.Header.Type {
				case unix.RTM_NEWLINK, unix.RTM_DELLINK, unix.RTM_NEWADDR, unix.RTM_DELADDR:
					wake()
				}
			}
		}
	}()
	return nil
}

// resolvers reads the nameservers of a resolv.conf-style file.
func resolvers(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "nameserver" {
			out = append(out, f[1])
		}
	}
	return out
}
