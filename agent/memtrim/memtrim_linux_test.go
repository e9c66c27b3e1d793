package memtrim

import (
	"reflect"
	"runtime"
	"runtime/debug"
	"testing"
)

func TestExecutableMappings(t *testing.T) {
	maps := []byte(`00400000-0094f000 r-xp 00000000 fe:00 10012128                           /usr/bin/cellagent
0094f000-00ea7000 r--p 0054f000 fe:00 10012128                           /usr/bin/cellagent
00ea7000-00f0a000 rw-p 00aa7000 fe:00 10012128                           /usr/bin/cellagent
00f0a000-02f4d000 rw-p 00000000 00:00 0
7f6e82e00000-7f6e83600000 r--s 00000000 fe:00 10007033                   /var/lib/cellagent/cellagent.db
7f6e83700000-7f6e83800000 r--p 00000000 fe:00 10012128                   /usr/bin/cellagent (deleted)
7f6e83900000-7f6e83a00000 r--p 00000000 fe:00 999                        /usr/lib/other
garbage line
`)
	got := executableMappings(maps, 10012128)
	want := []mapping{{0x400000, 0x94f000}, {0x94f000, 0xea7000}, {0x7f6e83700000, 0x7f6e83800000}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("executableMappings = %#x, want %#x (read-only, private, of the executable only)", got, want)
	}
}

func TestTrimUnmapsTheExecutable(t *testing.T) {
	// The test binary's own pages: touch a good part of them first, as
	// a run does, by collecting garbage and growing stacks.
	runtime.GC()
	before := rss()
	if before.file == 0 {
		t.Skip("no RssFile in /proc/self/status")
	}
	r, err := Trim()
	if err != nil {
		t.Fatal(err)
	}
	if r.Executable < 256<<10 {
		t.Errorf("Trim released %d KiB of the executable (RssFile was %d KiB); want most of it", r.Executable>>10, before.file>>10)
	}
}

func TestSetup(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMAXPROCS", "")
	old := runtime.MemProfileRate
	defer func() { runtime.MemProfileRate = old }()
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	Setup()
	if n := runtime.GOMAXPROCS(0); n != 1 {
		t.Errorf("GOMAXPROCS = %d after Setup, want 1", n)
	}
	if runtime.MemProfileRate != 0 {
		t.Errorf("MemProfileRate = %d after Setup, want 0", runtime.MemProfileRate)
	}
	if p := debug.SetGCPercent(100); p != GCPercent {
		t.Errorf("GOGC = %d after Setup, want %d", p, GCPercent)
	}
	t.Setenv("GOGC", "200")
	debug.SetGCPercent(200)
	Setup()
	if p := debug.SetGCPercent(200); p != 200 {
		t.Errorf("GOGC = %d after Setup with GOGC=200 in the environment, want 200", p)
	}
}
