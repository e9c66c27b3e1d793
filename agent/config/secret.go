package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ReadSecret reads a secret from a file. A bare name (no slash) is a
// systemd credential and is looked up in $CREDENTIALS_DIRECTORY. A file
// that group or others may read is refused: a password that every user of
// the gateway can read is not a secret. The error never contains the
// secret.
func ReadSecret(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("secret: no file given")
	}
	path := name
	if !strings.Contains(name, "/") {
		dir := os.Getenv("CREDENTIALS_DIRECTORY")
		if dir == "" {
			return "", fmt.Errorf("secret %q: a bare name is a systemd credential, but CREDENTIALS_DIRECTORY is not set (use a path, or LoadCredential= in the unit)", name)
		}
		path = filepath.Join(dir, name)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("secret: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("secret %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("secret %s is readable by group or others (mode %04o); run: chmod 600 %s", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("secret: %w", err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("secret %s is empty", path)
	}
	return s, nil
}
