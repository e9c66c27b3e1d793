package firmware

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The packages are built once per test run with a fixed version, so the
// tests can check the version mapping and the stamp end to end.
const (
	testVersion    = "v9.8.7-3-gdeadbee"
	testDebVersion = "9.8.7+git3.deadbee"
)

// debArches are the Debian architectures the gateways and the bench use.
var debArches = []string{"amd64", "arm64", "armhf"}

var (
	// scratch holds what the tests build; removed at the end.
	scratch string
	// repo is the repository's root, where scripts/deb runs.
	repo string
	// debScript is scripts/deb.
	debScript string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cellagent-firmware-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	scratch = dir
	if repo, err = filepath.Abs(".."); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	debScript = filepath.Join(repo, "scripts", "deb")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// need finds a tool the test cannot do without. Outside CI a missing tool
// skips the test with the package to install; under CI=true it fails,
// because `make deps` installs it there.
func need(t *testing.T, tool, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found (CI=true: run make deps, which installs %s)", tool, pkg)
	}
	t.Skipf("%s not found: apt-get install %s (or make deps)", tool, pkg)
	return ""
}

// run runs a command and returns its combined output, failing the test
// with that output when it does not exit 0.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(dir, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(dir string, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// built is the result of building the packages, shared by every test.
var built struct {
	once  sync.Once
	debs  map[string]string // Debian arch → .deb
	roots map[string]string // Debian arch → the .deb unpacked
	err   error
}

// packages builds the three .debs with scripts/deb (once per run: about
// 20 s with a warm build cache) and unpacks each.
func packages(t *testing.T) (debs, roots map[string]string) {
	t.Helper()
	need(t, "dpkg-deb", "dpkg")
	built.once.Do(func() {
		built.err = buildPackages()
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.debs, built.roots
}

func buildPackages() error {
	out := filepath.Join(scratch, "debs")
	args := append([]string{"-o", out}, debArches...)
	start := time.Now()
	log, err := runErr(repo, []string{"VERSION=" + testVersion}, debScript, args...)
	if err != nil {
		return fmt.Errorf("scripts/deb: %w\n%s", err, log)
	}
	fmt.Fprintf(os.Stderr, "firmware: built %d packages in %s\n", len(debArches), time.Since(start).Round(time.Second/10))
	built.debs = map[string]string{}
	built.roots = map[string]string{}
	for _, arch := range debArches {
		deb := filepath.Join(out, fmt.Sprintf("cellagent_%s_%s.deb", testDebVersion, arch))
		if _, err := os.Stat(deb); err != nil {
			return fmt.Errorf("scripts/deb printed %q but %w", log, err)
		}
		root := filepath.Join(scratch, "root-"+arch)
		if log, err := runErr("", nil, "dpkg-deb", "-x", deb, root); err != nil {
			return fmt.Errorf("dpkg-deb -x %s: %w\n%s", deb, err, log)
		}
		built.debs[arch], built.roots[arch] = deb, root
	}
	return nil
}

// unitSettings reads a systemd unit's settings as section.Key → values in
// file order; enough for the plain unit files here (no line continuations).
func unitSettings(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	settings := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: not a setting: %q", path, line)
			}
			settings[section+"."+k] = append(settings[section+"."+k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return settings
}
