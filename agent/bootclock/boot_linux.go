package bootclock

import (
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

var bootID = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
})

// System reads /proc's boot id and CLOCK_BOOTTIME, which unlike
// CLOCK_MONOTONIC goes on counting while the system is suspended, as the
// wall clock does.
func System() (id string, up time.Duration) {
	id = bootID()
	var ts unix.Timespec
	if id == "" || unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
		return "", 0
	}
	return id, time.Duration(ts.Nano())
}
