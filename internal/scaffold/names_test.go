package scaffold

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNewNamesBuild adds, to one copy of the repository, a service for each
// name whose derived names are easy to get wrong: digits the generators
// read as word breaks (e2e is E2EService in Go), '-', the longest name,
// and Go and protobuf keywords and predeclared names. Every one must
// build, vet and pass its own tests; the real protoc and plugins generate
// their code. One copy and one go test for all of them keeps it to about
// a minute of build on two cores; TestNewAndRename runs one such service.
func TestNewNamesBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("copies the repository and builds a service per name")
	}
	lookPath(t, "protoc")
	dir := copyRepo(t, repoRoot(t))
	start := time.Now()
	names := []string{
		"b2b", "e2e", "v2api", "order-2nd", "a-b-c", "x1", "a1b2c3",
		"long-name-9x-with-digits-and-dashes-40ch",
		"func", "map", "import", "package", "string", "error", "main", // Go
		"message", "service", "syntax", "rpc", "returns", "option", // protobuf
	}
	if n := names[7]; len(n) != maxNameLen {
		t.Fatalf("%q is %d characters, want the longest accepted, %d", n, len(n), maxNameLen)
	}
	var pkgs []string
	for _, name := range names {
		if err := New(dir, name); err != nil {
			t.Fatalf("New(%q): %v", name, err)
		}
		pkgs = append(pkgs, "./"+filepath.ToSlash(filepath.Join("services", name))+"/...")
	}
	t.Logf("%d services generated in %v", len(names), time.Since(start).Round(time.Millisecond))
	// Each starts in make up and in make up PROFILE=ha (every registry member).
	for _, f := range []struct{ file, entry string }{
		{"docker-compose.yml", composeEntry},
		{"docker-compose.ha.yml", haComposeEntry},
	} {
		data, err := os.ReadFile(filepath.Join(dir, f.file))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			if !strings.Contains(string(data), "\n"+strings.ReplaceAll(f.entry, "NAME", name)) {
				t.Errorf("%s has no entry for %s like hello's", f.file, name)
			}
		}
	}
	goCmd(t, dir, append([]string{"vet"}, pkgs...)...)
	goCmd(t, dir, append([]string{"test", "-count=1"}, pkgs...)...)
}
