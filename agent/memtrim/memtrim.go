// Package memtrim keeps a long-running daemon's resident memory close to
// what it uses, rather than everything it has touched since it started.
//
// Three things grow a small Go daemon's RSS over hours although its live
// heap does not grow (see the soak runs in BENCHMARKS.md):
//
//   - The heap profiler, on by default, records a stack every 512 KiB
//     allocated. Each new stack adds a record that is never freed, and the
//     table they hang off (1.4 MiB, allocated at the first sample) gets its
//     pages touched one by one; unwinding each stack also reads the
//     binary's function tables. A daemon that serves no profiles pays this
//     for nothing: [Setup] turns it off.
//   - The heap grows to its goal between collections (at least 4 MiB at
//     GOGC=100, while the live heap is 1–2 MiB), and the runtime returns
//     free pages to the system only slowly. [Setup] lowers GOGC and
//     [Trim] returns what is free.
//   - Pages of the executable that ran once (start-up, configuration, a
//     rare error path) stay mapped and count in RSS until the kernel needs
//     the memory; the kernel maps them 64 KiB at a time (fault-around).
//     [Trim] unmaps the executable's read-only pages; what the daemon still
//     runs comes back from the page cache at the cost of a minor fault.
//
// Only the daemon uses it: in a process that runs many agents (the fleet
// simulation) or profiles itself, these are the wrong trade-offs.
package memtrim

import (
	"os"
	"runtime"
	"runtime/debug"
)

// GCPercent is the GOGC the daemon runs with unless the environment sets
// one: a collection when the heap has grown by half of what was live, so
// the heap between collections stays near 2 MiB (the runtime's floor at
// this setting) instead of 4 MiB. At a few SMS a minute the extra
// collections cost well under a millisecond a minute.
const GCPercent = 50

// Setup tunes the runtime for the daemon. Call it first thing in the
// process, before the allocations it should not profile. Settings from the
// environment (GOGC, GOMAXPROCS) win.
//
// Besides the memory settings it runs Go code on one processor: the
// daemon's work is a few milliseconds a minute, and with more than one P
// the scheduler wakes a second thread to look for work whenever a
// goroutine wakes (a timer, a line from the modem), which doubles the
// context switches of an idle daemon. Measured side by side on the
// simulator with an SMS every 10 s: 74 against 112 ms of CPU in two
// minutes (BENCHMARKS.md).
func Setup() {
	runtime.MemProfileRate = 0
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}

// Trim returns the heap's free pages to the system and unmaps the
// executable's read-only pages, and says how much of each it released.
// It is safe at any time; it costs one garbage collection and the minor
// faults that bring the code still in use back.
func Trim() (Released, error) {
	var r Released
	before := rss()
	debug.FreeOSMemory()
	mid := rss()
	r.Heap = max(0, before.anon-mid.anon)
	err := dropExecutable()
	r.Executable = max(0, mid.file-rss().file)
	return r, err
}

// Released is what one Trim gave back, in bytes.
type Released struct {
	Heap, Executable int64
}
