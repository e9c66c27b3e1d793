package firmware

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// readmeSection returns the lines of the section of file that starts with
// the line heading (and ends at the next heading of any level).
func readmeSection(t *testing.T, file, heading string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case line == heading:
			in = true
		case in && strings.HasPrefix(line, "#"):
			return out
		case in:
			out = append(out, line)
		}
	}
	if !in {
		t.Fatalf("%s has no %q section", file, heading)
	}
	return out
}

var (
	// tableRow is a row of the layout table: the path in its first cell.
	tableRow = regexp.MustCompile("^\\| `([^`]+)` \\| (.*) \\|$")
	// subdir is a directory named in a row's description, relative to
	// the row's path (`bscemu/` in the row of transport/bsc/).
	subdir = regexp.MustCompile("`([a-z0-9_]+/)`")
	// mdLink is a link to a file of the repository.
	mdLink = regexp.MustCompile(`\]\(([^)#:]+)\)`)
)

// The README's layout table is the map a newcomer reads first: every path
// it names exists, and every package and top-level folder of the tree is
// in it, so a package renamed or added without the table fails here.
func TestReadmeLayout(t *testing.T) {
	listed := map[string]bool{}
	for _, line := range readmeSection(t, filepath.Join(repo, "README.md"), "## Layout") {
		m := tableRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		dir := m[1]
		paths := []string{dir}
		for _, s := range subdir.FindAllStringSubmatch(m[2], -1) {
			paths = append(paths, dir+s[1])
		}
		for _, p := range paths {
			listed[strings.TrimSuffix(p, "/")] = true
			if fi, err := os.Stat(filepath.Join(repo, p)); err != nil || !fi.IsDir() {
				t.Errorf("README layout names %s, which is not a directory: %v", p, err)
			}
		}
		for _, l := range mdLink.FindAllStringSubmatch(m[2], -1) {
			if _, err := os.Stat(filepath.Join(repo, l[1])); err != nil {
				t.Errorf("README layout links %s: %v", l[1], err)
			}
		}
	}
	if len(listed) == 0 {
		t.Fatal("no rows in the README's layout table")
	}

	tops, err := os.ReadDir(repo)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tops {
		// bin/ and dist/ are build output, not in the repository.
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || e.Name() == "bin" || e.Name() == "dist" {
			continue
		}
		in := false
		for p := range listed {
			in = in || p == e.Name() || strings.HasPrefix(p, e.Name()+"/")
		}
		if !in {
			t.Errorf("top-level folder %s/ is not in the README's layout table", e.Name())
		}
	}
	var pkgs []string
	err = filepath.WalkDir(repo, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && p != repo && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bin" || name == "dist") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(name, ".go") {
			rel, err := filepath.Rel(repo, filepath.Dir(p))
			if err != nil {
				return err
			}
			if rel = filepath.ToSlash(rel); rel != "." && !slices.Contains(pkgs, rel) {
				pkgs = append(pkgs, rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkgs {
		if !listed[p] {
			t.Errorf("package %s is not in the README's layout table", p)
		}
	}
}

// Every target of the Makefile is in the README's "Make targets" table.
func TestReadmeMakeTargets(t *testing.T) {
	mk, err := os.ReadFile(filepath.Join(repo, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	phony := regexp.MustCompile(`(?m)^\.PHONY:(.*)$`).FindSubmatch(mk)
	if phony == nil {
		t.Fatal("Makefile has no .PHONY line")
	}
	table := strings.Join(readmeSection(t, filepath.Join(repo, "README.md"), "## Make targets"), "\n")
	for _, target := range strings.Fields(string(phony[1])) {
		want := "`make " + target + "`"
		if target == "all" {
			want = "(`make`)"
		}
		if !strings.Contains(table, want) {
			t.Errorf("make %s is not in the README's Make targets table", target)
		}
	}
}

// firmware/README.md names every file that ships from here, and no file
// that is gone.
func TestFirmwareReadme(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	var files []string
	err = filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if path.Ext(p) != ".go" && p != "README.md" {
			files = append(files, filepath.ToSlash(p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		// Files under debian/ may be named together ("debian/postinst,
		// prerm"), so their base name is enough.
		if !strings.Contains(readme, "`"+f+"`") && !(strings.HasPrefix(f, "debian/") && strings.Contains(readme, path.Base(f))) {
			t.Errorf("firmware/README.md does not name %s", f)
		}
	}
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)`").FindAllStringSubmatch(readme, -1) {
		if _, err := os.Stat(m[1]); err != nil {
			t.Errorf("firmware/README.md names %s: %v", m[1], err)
		}
	}
}
