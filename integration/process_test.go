package integration

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// binDir holds the service binaries TestMain built.
var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // every test skips itself; building would be wasted
	}
	os.Exit(buildAndRun(m))
}

// buildAndRun builds the services once for all tests, runs them, and
// removes the binaries.
func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "micro-starter-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./services/...")
	build.Dir = ".." // the module root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the services: %v\n%s", err, out)
		return 1
	}
	binDir = dir
	return m.Run()
}

func skipIfShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: starts Consul, etcd and the services")
	}
}
