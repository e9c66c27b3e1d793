package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An existing state directory open to others (mkdir -m 755) is tightened
// to 0700, as a new one is created; a shared one is refused, not changed.
func TestOpenTightensExistingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "st")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	openAt(t, filepath.Join(dir, "store.db"), Options{})
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Errorf("state directory mode %o after Open, want 700", got)
	}

	shared := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(shared, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	_, err = Open(filepath.Join(shared, "store.db"), Options{})
	if err == nil || !strings.Contains(err.Error(), "is shared") {
		t.Errorf("Open in a sticky world-writable directory: %v, want a refusal", err)
	}
	if fi, _ := os.Stat(shared); fi.Mode().Perm() != 0o777 {
		t.Errorf("a shared directory was changed to %o", fi.Mode().Perm())
	}
}
