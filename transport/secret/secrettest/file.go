package secrettest

import (
	"os"
	"path/filepath"
	"testing"
)

// WriteFile writes content to dir/name with exactly mode (chmod'ed, so
// the umask can neither widen nor narrow it: secret.Read judges the mode)
// and returns the path.
func WriteFile(t testing.TB, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}
