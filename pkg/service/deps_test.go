package service

import (
	"os/exec"
	"strings"
	"testing"
)

// TestServicesLinkNoGoMicroCmd: no service links go-micro's command line
// package. go-micro's plugins import it in their init only to add themselves
// to its defaults, and it links every default plugin with it (go-git,
// ProtonMail crypto, urfave/cli, blackfriday) and runs their initialisation:
// ~5 MiB of RSS per process at idle for code never called. The root go.mod
// replaces the four plugins the starter uses with copies without that init
// (third_party/go-micro-plugins).
func TestServicesLinkNoGoMicroCmd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "github.com/example/micro-starter/services/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range []string{"go-micro.dev/v4/util/cmd", "github.com/go-git/go-git/v5", "github.com/urfave/cli/v2"} {
		for dep := range strings.FieldsSeq(string(out)) {
			if dep == pkg {
				t.Errorf("the services link %s", pkg)
			}
		}
	}
}
