package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The manual page and the completion scripts are made from the commands'
// own flag sets: every command and flag is in them, the page formats
// without a warning, and bash completes as a user would see it.
func TestDocsGenerated(t *testing.T) {
	bin := testBinary(t)
	dir := t.TempDir()
	if out, err := exec.Command(bin, "__docs", "--out", dir, "--date", "2026-12-04").CombinedOutput(); err != nil {
		t.Fatalf("__docs: %v\n%s", err, out)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	man, bash, zsh, fish := read("cellagent.1"), read("cellagent.bash"), read("_cellagent"), read("cellagent.fish")
	for name := range commands {
		if !strings.Contains(man, `.SS "cellagent `+name) || !strings.Contains(zsh, "'"+name+":") || !strings.Contains(fish, "-a '"+name+"'") {
			t.Errorf("command %s missing from the manual or the zsh/fish completion", name)
		}
	}
	// Flags of a subcommand, as its own flag set defines them.
	for _, flag := range []string{"smsc", "report", "text", "hex", "to", "port"} {
		if !strings.Contains(man, `\-\-`+flag) || !strings.Contains(bash, "--"+flag) || !strings.Contains(fish, "-l "+flag) {
			t.Errorf("sms send --%s missing", flag)
		}
	}
	if strings.Contains(man+bash+zsh+fish, "__docs") {
		t.Error("the generation command shows in the documentation")
	}

	if groff, err := exec.LookPath("groff"); err == nil {
		out, err := exec.Command(groff, "-man", "-ww", "-z", filepath.Join(dir, "cellagent.1")).CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("groff warns about the manual page: %v\n%s", err, out)
		}
	}

	complete := func(line string) string {
		script := `source "$1"; read -ra COMP_WORDS <<< "$2"; [[ "$2" == *" " ]] && COMP_WORDS+=(""); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _cellagent; echo "${COMPREPLY[*]}"`
		out, err := exec.Command("bash", "-c", script, "bash", filepath.Join(dir, "cellagent.bash"), line).CombinedOutput()
		if err != nil {
			t.Fatalf("bash completion of %q: %v\n%s", line, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for line, want := range map[string]string{
		"cellagent sm":            "sms",
		"cellagent sms ":          "delete list send --help",
		"cellagent bsc reset --j": "--json",
		"cellagent fleet w":       "watch",
	} {
		if got := complete(line); got != want {
			t.Errorf("bash completes %q as %q, want %q", line, got, want)
		}
	}

	for _, sh := range []struct{ prog, file string }{{"zsh", "_cellagent"}, {"fish", "cellagent.fish"}} {
		p, err := exec.LookPath(sh.prog)
		if err != nil {
			// make deps installs both; only a developer's machine may lack them.
			if os.Getenv("CI") != "" {
				t.Errorf("%s not installed under CI: its script is not parsed", sh.prog)
			} else {
				t.Logf("%s not installed: its script is not parsed", sh.prog)
			}
			continue
		}
		if out, err := exec.Command(p, "-n", filepath.Join(dir, sh.file)).CombinedOutput(); err != nil {
			t.Errorf("%s -n %s: %v\n%s", sh.prog, sh.file, err, out)
		}
		if sh.prog == "fish" {
			out, err := exec.Command(p, "-c", `source $argv[1]; complete -C "cellagent sms send --sm"`, filepath.Join(dir, sh.file)).CombinedOutput()
			if err != nil || !strings.HasPrefix(string(out), "--smsc\t") {
				t.Errorf("fish completes \"cellagent sms send --sm\" as %q (%v)", out, err)
			}
		}
	}
}
