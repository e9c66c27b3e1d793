package fleetload

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// procStat is one process as /proc shows it.
type procStat struct {
	rss     uint64        // bytes
	cpu     time.Duration // user + system
	threads int
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat: USER_HZ, which
// Linux fixes at 100 for user space whatever the kernel's tick.
const userHZ = 100

// readProc reads what it can; a process that is gone reads as zeros.
func readProc(pid int) procStat {
	var p procStat
	dir := fmt.Sprintf("/proc/%d", pid)
	if f, err := os.Open(dir + "/status"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":")
			fields := strings.Fields(v)
			if len(fields) == 0 {
				continue
			}
			n, _ := strconv.ParseUint(fields[0], 10, 64)
			switch k {
			case "VmRSS":
				p.rss = n * 1024
			case "Threads":
				p.threads = int(n)
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile(dir + "/stat"); err == nil {
		// The command name in parentheses may hold spaces: count the
		// fields from the last ')'; utime and stime are fields 14 and 15.
		if i := bytes.LastIndexByte(b, ')'); i >= 0 {
			f := strings.Fields(string(b[i+1:]))
			if len(f) > 12 {
				u, _ := strconv.ParseUint(f[11], 10, 64)
				s, _ := strconv.ParseUint(f[12], 10, 64)
				p.cpu = time.Duration(u+s) * time.Second / userHZ
			}
		}
	}
	return p
}

// countFDs lists /proc/<pid>/fd: thousands of entries in a big fleet,
// so it is read once, not with every sample.
func countFDs(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	return len(ents)
}

// selfCPU is this process's CPU time, finer than /proc's 10 ms ticks.
func selfCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fdsPerGateway counts a gateway's descriptors: the pty master and slave
// the simulator keeps, the agent's port, the store and the broker
// connection, plus slack for a port reopened before the old one closed.
const fdsPerGateway = 8

// checkLimits fails early, and says what to change, when the machine
// cannot hold count gateways: each needs a pty and about eight descriptors.
func checkLimits(count int) error {
	need := uint64(count*fdsPerGateway + 64)
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("fleetload: open-file limit: %w", err)
	}
	if lim.Cur < need {
		// Go raises the soft limit to the hard one at start; this covers
		// a hard limit raised since, or a runtime that did not.
		want := lim
		want.Cur = min(need, lim.Max)
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err == nil {
			lim = want
		}
	}
	if lim.Cur < need {
		return fmt.Errorf("fleetload: %d gateways need about %d open files, the limit is %d (raise it with ulimit -n)", count, need, lim.Cur)
	}
	maxPTY, err1 := readInt("/proc/sys/kernel/pty/max")
	used, err2 := readInt("/proc/sys/kernel/pty/nr")
	if err1 == nil && err2 == nil && maxPTY-used < count {
		return fmt.Errorf("fleetload: %d gateways need as many ptys, %d of %d are free (raise /proc/sys/kernel/pty/max)", count, maxPTY-used, maxPTY)
	}
	return nil
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
