package memtrim

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// dropExecutable tells the kernel this process no longer needs the pages
// of its own executable that are mapped read-only (code, read-only data,
// the function tables). MADV_DONTNEED on a private file mapping that was
// never written only removes the page-table entries: the pages stay in the
// page cache and a later access maps them again. The writable mappings
// (initialised data, which holds the program's variables) are left alone.
func dropExecutable() error {
	var exe syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &exe); err != nil {
		return fmt.Errorf("memtrim: executable: %w", err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return fmt.Errorf("memtrim: %w", err)
	}
	for _, m := range executableMappings(maps, exe.Ino) {
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_DONTNEED); e != 0 {
			return fmt.Errorf("memtrim: madvise %#x-%#x: %w", m.start, m.end, e)
		}
	}
	return nil
}

type mapping struct{ start, end uintptr }

// executableMappings picks from /proc/self/maps the private, read-only
// mappings of the file with inode ino.
func executableMappings(maps []byte, ino uint64) []mapping {
	var out []mapping
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		// start-end perms offset dev inode [path]
		f := strings.Fields(sc.Text())
		if len(f) < 6 || len(f[1]) != 4 || f[1][1] == 'w' || f[1][3] != 'p' {
			continue
		}
		if n, err := strconv.ParseUint(f[4], 10, 64); err != nil || n != ino {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		a, err1 := strconv.ParseUint(lo, 16, 64)
		b, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || b <= a {
			continue
		}
		out = append(out, mapping{uintptr(a), uintptr(b)})
	}
	return out
}

type usage struct{ anon, file int64 }

// rss reads the process's resident anonymous and file-backed memory.
func rss() usage {
	var u usage
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return u
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "RssAnon":
			u.anon = n << 10
		case "RssFile":
			u.file = n << 10
		}
	}
	return u
}
