package firmware

import (
	"debug/buildinfo"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// maxBinary is the size budget of the binary on a gateway's flash.
const maxBinary = 15 << 20

func TestDebVersion(t *testing.T) {
	for _, c := range []struct{ git, deb string }{
		{testVersion, testDebVersion},
		{"v1.2.0", "1.2.0"},
		{"v1.2.0-rc1", "1.2.0~rc1"},
		{"v1.2.0-dirty", "1.2.0+dirty"},
		{"44ab76b", "0.0~git20261122214052.44ab76b"},
		{"44ab76b-dirty", "0.0~git20261122214052.44ab76b+dirty"},
		{"dev", "0.0~dev"},
	} {
		out, err := runErr(repo, []string{"VERSION=" + c.git, "SOURCE_DATE_EPOCH=1795383652"}, debScript, "-V")
		if err != nil || strings.TrimSpace(out) != c.deb {
			t.Errorf("VERSION=%s: got %q (%v), want %s", c.git, out, err, c.deb)
		}
	}
	// The order dpkg sees must be the order of the releases.
	if _, err := exec.LookPath("dpkg"); err == nil {
		for _, p := range [][2]string{{"1.2.0~rc1", "1.2.0"}, {"1.2.0", "1.2.0+git3.abc1234"}, {"0.0~git20261122214052.44ab76b", "1.0"}} {
			if out, err := runErr("", nil, "dpkg", "--compare-versions", p[0], "lt", p[1]); err != nil {
				t.Errorf("dpkg does not sort %s before %s: %v %s", p[0], p[1], err, out)
			}
		}
	}
}

func TestDebContents(t *testing.T) {
	debs, roots := packages(t)
	// Path → mode as dpkg-deb --contents prints it; everything root-owned.
	want := map[string]string{
		"./usr/bin/cellagent":                                   "-rwxr-xr-x",
		"./lib/systemd/system/cellagent.service":                "-rw-r--r--",
		"./lib/udev/rules.d/99-cellagent-bg96.rules":            "-rw-r--r--",
		"./etc/cellagent/cellagent.toml":                        "-rw-r--r--",
		"./usr/share/doc/cellagent/copyright":                   "-rw-r--r--",
		"./usr/share/doc/cellagent/changelog.gz":                "-rw-r--r--",
		"./usr/share/doc/cellagent/README.md":                   "-rw-r--r--",
		"./usr/share/doc/cellagent/SCHEMA.md":                   "-rw-r--r--",
		"./usr/share/doc/cellagent/API.md":                      "-rw-r--r--",
		"./usr/share/doc/cellagent/fleet-tools.md":              "-rw-r--r--",
		"./usr/share/man/man1/cellagent.1.gz":                   "-rw-r--r--",
		"./usr/share/bash-completion/completions/cellagent":     "-rw-r--r--",
		"./usr/share/zsh/vendor-completions/_cellagent":         "-rw-r--r--",
		"./usr/share/fish/vendor_completions.d/cellagent.fish":  "-rw-r--r--",
		"./usr/share/man/":                                      "drwxr-xr-x",
		"./usr/share/man/man1/":                                 "drwxr-xr-x",
		"./usr/share/bash-completion/":                          "drwxr-xr-x",
		"./usr/share/bash-completion/completions/":              "drwxr-xr-x",
		"./usr/share/zsh/":                                      "drwxr-xr-x",
		"./usr/share/zsh/vendor-completions/":                   "drwxr-xr-x",
		"./usr/share/fish/":                                     "drwxr-xr-x",
		"./usr/share/fish/vendor_completions.d/":                "drwxr-xr-x",
		"./usr/share/lintian/overrides/cellagent":               "-rw-r--r--",
		"./etc/cellagent/":                                      "drwxr-xr-x",
		"./lib/systemd/system/":                                 "drwxr-xr-x",
		"./usr/share/doc/cellagent/":                            "drwxr-xr-x",
		"./usr/share/lintian/overrides/":                        "drwxr-xr-x",
		"./lib/udev/rules.d/":                                   "drwxr-xr-x",
		"./usr/bin/":                                            "drwxr-xr-x",
		"./usr/share/lintian/":                                  "drwxr-xr-x",
		"./usr/share/doc/cellagent/examples/":                   "drwxr-xr-x",
		"./usr/share/doc/cellagent/examples/cellagent-ppp.conf": "-rw-r--r--",
		"./usr/share/doc/":                                      "drwxr-xr-x",
		"./usr/share/":                                          "drwxr-xr-x",
		"./lib/systemd/":                                        "drwxr-xr-x",
		"./lib/udev/":                                           "drwxr-xr-x",
		"./usr/":                                                "drwxr-xr-x",
		"./lib/":                                                "drwxr-xr-x",
		"./etc/":                                                "drwxr-xr-x",
		"./":                                                    "drwxr-xr-x",
	}
	for _, arch := range debArches {
		t.Run(arch, func(t *testing.T) {
			deb := debs[arch]
			info := run(t, "", nil, "dpkg-deb", "--info", deb)
			for _, field := range []string{" Package: cellagent\n", " Version: " + testDebVersion + "\n", " Architecture: " + arch + "\n", " Depends: adduser, ", " Recommends: udev, ppp\n"} {
				if !strings.Contains(info, field) {
					t.Errorf("dpkg-deb --info lacks %q:\n%s", field, info)
				}
			}
			// Control members and whether dpkg-deb marks them executable.
			for _, m := range []string{"conffiles  ", "control  ", "md5sums  ", "*  postinst ", "*  prerm ", "*  postrm "} {
				if !strings.Contains(info, m) {
					t.Errorf("dpkg-deb --info lists no %q:\n%s", m, info)
				}
			}

			seen := map[string]bool{}
			for _, line := range strings.Split(strings.TrimSpace(run(t, "", nil, "dpkg-deb", "--contents", deb)), "\n") {
				f := strings.Fields(line)
				if len(f) != 6 {
					t.Fatalf("unexpected --contents line %q", line)
				}
				mode, owner, path := f[0], f[1], f[5]
				if owner != "root/root" {
					t.Errorf("%s owned by %s, want root/root", path, owner)
				}
				if m, ok := want[path]; !ok {
					t.Errorf("unexpected %s in the package", path)
				} else if m != mode {
					t.Errorf("%s has mode %s, want %s", path, mode, m)
				}
				seen[path] = true
			}
			for path := range want {
				if !seen[path] {
					t.Errorf("%s missing from the package", path)
				}
			}

			ctrl := t.TempDir()
			run(t, "", nil, "dpkg-deb", "--control", deb, ctrl)
			conffiles, err := os.ReadFile(filepath.Join(ctrl, "conffiles"))
			if err != nil || string(conffiles) != "/etc/cellagent/cellagent.toml\n" {
				t.Errorf("conffiles %q (%v), want only /etc/cellagent/cellagent.toml", conffiles, err)
			}
			for _, s := range []string{"postinst", "prerm", "postrm"} {
				p := filepath.Join(ctrl, s)
				shipped, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if src, _ := os.ReadFile(filepath.Join("debian", s)); string(src) != string(shipped) {
					t.Errorf("%s in the package differs from firmware/debian/%s", s, s)
				}
				if out, err := runErr("", nil, "sh", "-n", p); err != nil {
					t.Errorf("%s: sh -n: %v\n%s", s, err, out)
				}
			}

			root := roots[arch]
			for _, f := range []string{"cellagent.service", "99-cellagent-bg96.rules", "cellagent.toml"} {
				src, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				var dst string
				switch f {
				case "cellagent.service":
					dst = "lib/systemd/system/" + f
				case "99-cellagent-bg96.rules":
					dst = "lib/udev/rules.d/" + f
				default:
					dst = "etc/cellagent/" + f
				}
				if got, err := os.ReadFile(filepath.Join(root, dst)); err != nil || string(got) != string(src) {
					t.Errorf("/%s is not firmware/%s (%v)", dst, f, err)
				}
			}
			checkCopyright(t, root)
			if schema, _ := os.ReadFile("../transport/mqtt/SCHEMA.md"); len(schema) == 0 || string(schema) != readFile(t, filepath.Join(root, "usr/share/doc/cellagent/SCHEMA.md")) {
				t.Error("/usr/share/doc/cellagent/SCHEMA.md is not transport/mqtt/SCHEMA.md")
			}
			checkBinary(t, arch, filepath.Join(root, "usr/bin/cellagent"))
		})
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The package as Debian's own checker sees it: no error or warning (the
// static binary is overridden on purpose). Lintian checks that the
// program has a manual page, that the page formats cleanly and that the
// copyright file is in the machine-readable format. One architecture
// stands for all: the packages differ only in the binary.
func TestDebLintian(t *testing.T) {
	lintian := need(t, "lintian", "lintian")
	debs, _ := packages(t)
	out, err := runErr("", nil, lintian, "--no-cfg", "--fail-on", "warning", debs["amd64"])
	t.Logf("lintian:\n%s", out)
	if err != nil {
		t.Errorf("lintian: %v\n%s", err, out)
	}
	for _, tag := range []string{"no-manual-page", "copyright-", "manpage-"} {
		if strings.Contains(out, tag) {
			t.Errorf("lintian reports %s...", tag)
		}
	}
}

// checkCopyright makes sure every module linked into the binary has its
// licence in the copyright file: a static binary carries their code.
func checkCopyright(t *testing.T, root string) {
	t.Helper()
	info, err := buildinfo.ReadFile(filepath.Join(root, "usr/bin/cellagent"))
	if err != nil {
		t.Fatal(err)
	}
	copyright, err := os.ReadFile(filepath.Join(root, "usr/share/doc/cellagent/copyright"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(copyright), "The Go runtime and standard library ("+info.GoVersion+")") {
		t.Errorf("copyright does not cover the Go runtime %s", info.GoVersion)
	}
	for _, d := range info.Deps {
		if !strings.Contains(string(copyright), "Go module "+d.Path+" "+d.Version+",") {
			t.Errorf("copyright lacks the licence of %s %s", d.Path, d.Version)
		}
	}
}

// checkBinary checks that the packaged binary is for the package's
// machine, static, built the way scripts/deb promises, and small enough.
func checkBinary(t *testing.T, arch, path string) {
	t.Helper()
	machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "armhf": elf.EM_ARM}[arch]
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != machine {
		t.Errorf("%s: ELF machine %s, want %s", arch, f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s: has %s: not a static binary", arch, p.Type)
		}
	}
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	want := map[string]string{"CGO_ENABLED": "0", "GOOS": "linux", "-trimpath": "true"}
	switch arch {
	case "armhf":
		want["GOARCH"], want["GOARM"] = "arm", "7"
	default:
		want["GOARCH"] = arch
	}
	for k, v := range want {
		if settings[k] != v {
			t.Errorf("%s: built with %s=%q, want %q", arch, k, settings[k], v)
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d bytes (%.2f MiB), %s", arch, st.Size(), float64(st.Size())/(1<<20), info.GoVersion)
	if st.Size() > maxBinary {
		t.Errorf("%s: %d bytes, over the %d byte budget", arch, st.Size(), maxBinary)
	}
	// The native binary can run: its version is the stamp. The others
	// run under qemu in TestQemuStatus.
	if nativeArch() == arch {
		if out := run(t, "", nil, path, "version"); out != "cellagent "+testVersion+"\n" {
			t.Errorf("version printed %q, want cellagent %s", out, testVersion)
		}
	}
}

// nativeArch is the Debian architecture of the test machine.
func nativeArch() string {
	if runtime.GOARCH == "arm" {
		return "armhf"
	}
	return runtime.GOARCH
}
