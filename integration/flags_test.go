package integration

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/internal/stack"
)

// TestRegistryAddressFlagBeatsEnvironment starts user with
// --registry_address and MICRO_REGISTRY_ADDRESS naming different servers,
// one live and one dead. The flag wins for registration and lookups alike:
// go-micro's etcd plugin reads the variable by itself, and used to look up
// on the variable's server while registering on the flag's.
func TestRegistryAddressFlagBeatsEnvironment(t *testing.T) {
	forEachRegistry(t, func(t *testing.T, reg *stack.Registry) {
		dead := stack.MustFreeAddr(t)

		t.Run("flag live, variable dead", func(t *testing.T) {
			p := startUserWithEnv(t, "MICRO_REGISTRY_ADDRESS="+dead,
				"--registry", reg.Name, "--registry_address", reg.Addr, "--server_address", "127.0.0.1:0",
				"--registry_attempts", "1", "--registry_timeout", "2s")
			// Starting takes a lookup (the registry check) and a registration.
			poll.Eventually(t, 20*time.Second, func() error {
				if p.Exited() {
					t.Fatalf("user exited: %v\n%s", p.Err(), p.Tail(20))
				}
				if n := len(reg.MustInstances(t, "user")); n != 1 {
					return fmt.Errorf("%d user instances in %s, want 1", n, reg.Name)
				}
				return nil
			})
		})

		t.Run("flag dead, variable live", func(t *testing.T) {
			p := startUserWithEnv(t, "MICRO_REGISTRY_ADDRESS="+reg.Addr,
				"--registry", reg.Name, "--registry_address", dead, "--server_address", "127.0.0.1:0",
				"--registry_attempts", "1", "--registry_timeout", "500ms")
			if code := exitCode(t, p.Wait(20*time.Second)); code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			out := mustRead(t, p.Log)
			if !strings.Contains(out, "unreachable: "+reg.Name+" at "+dead) {
				t.Errorf("output does not name the flag's registry %s as unreachable:\n%s", dead, out)
			}
			if is := reg.MustInstances(t, "user"); len(is) != 0 {
				t.Errorf("registered in the variable's registry: %v", is)
			}
		})
	})
}

// startUserWithEnv starts the user binary with one environment variable
// (name=value) added to the hermetic environment.
func startUserWithEnv(tb testing.TB, variable string, args ...string) *stack.Proc {
	tb.Helper()
	cmd := exec.Command(filepath.Join(binDir, "user"), args...)
	cmd.Env = append(stack.HermeticEnv(), variable)
	return stack.MustStartCmd(tb, "user", cmd)
}

func mustRead(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// TestBadServerAddress: a malformed --server_address is a usage error (exit
// status 2) and a port in use exits 1, each with one line on stderr and
// before the registry is asked anything: the registry here is an etcd
// address where nothing listens, which would fail differently and later.
func TestBadServerAddress(t *testing.T) {
	skipIfShort(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tc := range []struct {
		name, address string
		code          int
		want          string
	}{
		{"malformed", "nonsense", 2, "server address"},
		{"port in use", taken.Addr().String(), 1, "address already in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, err := runUser(t, "--registry", "etcd", "--registry_address", stack.MustFreeAddr(t),
				"--registry_attempts", "1", "--server_address", tc.address)
			if code := exitCode(t, err); code != tc.code {
				t.Errorf("exit status %d, want %d", code, tc.code)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr is not one line saying %q: %q", tc.want, stderr)
			}
			if strings.Contains(stdout+stderr, "registry") {
				t.Errorf("the registry was contacted:\n%s%s", stdout, stderr)
			}
		})
	}
}
