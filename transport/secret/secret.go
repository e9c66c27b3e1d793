// Package secret reads passwords and keys from files, the only place the
// agent takes them from: never flags, never the config file itself.
package secret

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// maxSize bounds what is read: a password file that large is a mistake
// (a wrong path), and must not be read into memory whole.
const maxSize = 64 << 10

// Read returns the secret in the file name. A bare name (no slash) is a
// systemd credential, looked up in $CREDENTIALS_DIRECTORY (LoadCredential=).
// A file that group or others may access is refused: a password every user
// of the gateway can read is not a secret. One trailing line ending is
// dropped. Errors never contain the secret.
func Read(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("secret: no file given")
	}
	path := name
	if !strings.Contains(name, "/") {
		dir := os.Getenv("CREDENTIALS_DIRECTORY")
		if dir == "" {
			return "", fmt.Errorf("secret %q: a bare name is a systemd credential, but CREDENTIALS_DIRECTORY is not set (give a path, or LoadCredential= in the unit)", name)
		}
		path = filepath.Join(dir, name)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("secret: %w", err)
	}
	defer f.Close()
	// Stat the open file, not the path, so the file checked is the file read.
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("secret %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("secret %s: not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("secret %s has mode %04o, which lets group or others read it; run: chmod 600 %s", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return "", fmt.Errorf("secret %s: %w", path, err)
	}
	if len(b) > maxSize {
		return "", fmt.Errorf("secret %s: larger than %d bytes, not a secret file", path, maxSize)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return "", fmt.Errorf("secret %s is empty", path)
	}
	return s, nil
}
