package secret

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cellagent/transport/secret/secrettest"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		return secrettest.WriteFile(t, dir, name, content, mode)
	}
	if s, err := Read(write("ok", "s3cr:et\n", 0o600)); err != nil || s != "s3cr:et" {
		t.Fatalf("got %q, %v", s, err)
	}
	if s, err := Read(write("crlf", "pw\r\n", 0o400)); err != nil || s != "pw" {
		t.Fatalf("got %q, %v", s, err)
	}
	if s, err := Read(write("inner", "a\nb", 0o600)); err != nil || s != "a\nb" {
		t.Fatalf("only a trailing newline may be trimmed: %q, %v", s, err)
	}
	_, err := Read(write("open", "pw\n", 0o644))
	if err == nil || !strings.Contains(err.Error(), "group or others") || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable file: %v", err)
	}
	if _, err := Read(write("empty", "\n", 0o600)); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty file: %v", err)
	}
	if _, err := Read(filepath.Join(dir, "nope")); err == nil {
		t.Fatal("missing file accepted")
	}
	if _, err := Read(dir); err == nil {
		t.Fatal("directory accepted")
	}
}

func TestCredentialsDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bsc-password"), []byte("s3cret"), 0o400); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CREDENTIALS_DIRECTORY", dir)
	if s, err := Read("bsc-password"); err != nil || s != "s3cret" {
		t.Errorf("credential: %q %v", s, err)
	}
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	_, err := Read("bsc-password")
	if err == nil || !strings.Contains(err.Error(), "CREDENTIALS_DIRECTORY") {
		t.Errorf("bare name without a credentials directory: %v", err)
	}
}
