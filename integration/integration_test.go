package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/internal/stack"
)

// registerTTL is the services' default --register_ttl.
const registerTTL = 10 * time.Second

func TestStackServesThroughRegistry(t *testing.T) {
	forEachRegistry(t, func(t *testing.T, reg *stack.Registry) {
		s := mustStartSystem(t, reg, 2)

		for service, want := range map[string]int{"user": 2, "hello": 1, "gateway": 1} {
			is := reg.MustInstances(t, service)
			if len(is) != want {
				t.Fatalf("registry lists %d %s instances, want %d: %v", len(is), service, want, is)
			}
			for _, i := range is {
				host, port, err := net.SplitHostPort(i.Address)
				if err != nil || host != "127.0.0.1" || port == "0" {
					t.Errorf("%s: registered address %q, want 127.0.0.1:<port>", i.ID, i.Address)
					continue
				}
				conn, err := net.DialTimeout("tcp", i.Address, 2*time.Second)
				if err != nil {
					t.Errorf("%s: registered address does not accept connections: %v", i.ID, err)
					continue
				}
				conn.Close()
			}
		}
		userIDs := reg.MustIDs(t, "user")

		if code := get(t, s.url+"/readyz", nil); code != http.StatusOK {
			t.Errorf("GET /readyz: %d, want 200", code)
		}

		var hello struct {
			Message   string
			Instances map[string]string
		}
		if code := get(t, s.url+"/hello?user_id=ada", &hello); code != http.StatusOK {
			t.Fatalf("GET /hello?user_id=ada: %d, want 200", code)
		}
		if want := "Hello, Ada Lovelace!"; hello.Message != want {
			t.Errorf("message %q, want %q", hello.Message, want)
		}
		if hello.Instances["hello"] != s.hello.ID || !slices.Contains(userIDs, hello.Instances["user"]) {
			t.Errorf("answered by %v, want hello %s and one of users %v", hello.Instances, s.hello.ID, userIDs)
		}

		// Round robin should reach both instances within a few calls.
		seen := map[string]bool{}
		for i := 0; i < 50 && len(seen) < len(userIDs); i++ {
			var rsp struct {
				User     struct{ ID, Name string }
				Instance string
			}
			if code := get(t, s.url+"/users/ada", &rsp); code != http.StatusOK || rsp.User.ID != "ada" {
				t.Fatalf("GET /users/ada: %d, user %+v", code, rsp.User)
			}
			if !slices.Contains(userIDs, rsp.Instance) {
				t.Fatalf("GET /users/ada answered by %q, which the registry does not list (%v)", rsp.Instance, userIDs)
			}
			seen[rsp.Instance] = true
		}
		if len(seen) != len(userIDs) {
			t.Errorf("50 calls reached user instances %v, want all of %v", seen, userIDs)
		}

		if code := get(t, s.url+"/users/nobody", nil); code != http.StatusNotFound {
			t.Errorf("GET /users/nobody: %d, want 404", code)
		}
		if code := get(t, s.url+"/hello", nil); code != http.StatusBadRequest {
			t.Errorf("GET /hello: %d, want 400", code)
		}
	})
}

func TestGracefulStopLosesNoCall(t *testing.T) {
	forEachRegistry(t, func(t *testing.T, reg *stack.Registry) {
		s := mustStartSystem(t, reg, 2)
		l := startLoad(t, s.url+"/hello?user_id=ada", 4)
		l.waitForSuccesses(t, 50)

		victim := s.users[0]
		victim.MustSignal(t, syscall.SIGTERM)
		// It deregisters at once, before draining.
		poll.Eventually(t, 2*time.Second, goneFrom(t, reg, victim))
		if err := victim.Wait(10 * time.Second); err != nil {
			t.Errorf("%s after SIGTERM: %v, want exit status 0", victim.Name, err)
		}
		l.waitForSuccesses(t, 100) // the survivor serves alone

		assertNoFailures(t, l.stop(), 150)
	})
}

func TestCrashedInstanceLeavesRegistry(t *testing.T) {
	forEachRegistry(t, func(t *testing.T, reg *stack.Registry) {
		s := mustStartSystem(t, reg, 2)
		l := startLoad(t, s.url+"/hello?user_id=ada", 4)
		l.waitForSuccesses(t, 50)

		victim := s.users[0]
		victim.MustSignal(t, syscall.SIGKILL)
		killed := time.Now()
		// Nothing deregisters it: the registry drops it when its TTL runs
		// out, at most one TTL after its last re-registration.
		poll.Eventually(t, time.Until(killed.Add(registerTTL+2*time.Second)), goneFrom(t, reg, victim))
		l.waitForSuccesses(t, 100)

		assertNoFailures(t, l.stop(), 150)
	})
}

// TestRegistryPausedLosesNoCall is a short version of the chaos suite's
// registry outage (bench/chaos, T3): the registry stops answering (SIGSTOP)
// for longer than the callers' cache TTL and than the register TTL. Calls
// between running services keep succeeding, an instance stopped during the
// outage still exits, and every instance is registered again once the
// registry is back.
func TestRegistryPausedLosesNoCall(t *testing.T) {
	forEachRegistry(t, func(t *testing.T, reg *stack.Registry) {
		const cacheTTL = time.Second
		s := mustStartSystem(t, reg, 2, "--registry_cache_ttl", cacheTTL.String())
		leaving := mustStartService(t, reg, "user", "user-3")
		l := startLoad(t, s.url+"/hello?user_id=ada", 4)
		l.waitForSuccesses(t, 50)

		if err := reg.Pause(); err != nil {
			t.Fatal(err)
		}
		paused := time.Now()
		// On failure, resume it before the services stop, so that they can deregister.
		t.Cleanup(func() { _ = reg.Resume() })
		leaving.MustSignal(t, syscall.SIGTERM)
		if err := leaving.Wait(10 * time.Second); err != nil {
			t.Errorf("user-3, stopped during the outage: %v, want exit status 0", err)
		}
		// The outage lasts past the register TTL, so that etcd comes back
		// having expired every instance (and Consul would have, with the
		// TTL check it no longer has: TestConsulStallExpiresNoLiveInstance);
		// calls go on meanwhile.
		for time.Since(paused) < registerTTL+2*time.Second {
			l.waitForSuccesses(t, 50)
		}
		if err := reg.Resume(); err != nil {
			t.Fatal(err)
		}

		// Each instance registers again within one register interval (5 s).
		poll.Eventually(t, 5*time.Second+2*time.Second, func() error {
			want := map[string][]*stack.Node{"user": s.users, "hello": {s.hello}, "gateway": {s.gateway}}
			for service, nodes := range want {
				listed := reg.MustIDs(t, service)
				for _, n := range nodes {
					if !slices.Contains(listed, n.ID) {
						return fmt.Errorf("%s (%s) not registered again", n.Name, n.ID)
					}
				}
			}
			return nil
		})
		l.waitForSuccesses(t, 100)

		assertNoFailures(t, l.stop(), 300)
	})
}

// TestRegistryExpiresSilentInstances: an instance that stops refreshing its
// registration (paused with SIGSTOP: alive, its connections open, nothing
// deregisters it) leaves what the registry hands out within the register
// TTL, and not by being removed: Consul's HTTP check of it goes critical
// (sooner: see TestHungInstanceLeavesCallers); etcd's lease of the
// register TTL on its key runs out.
func TestRegistryExpiresSilentInstances(t *testing.T) {
	const registerInterval = 5 * time.Second // the services' default --register_interval
	forEachRegistry(t, func(t *testing.T, reg *stack.Registry) {
		u := mustStartService(t, reg, "user", "user")
		if reg.Name == "etcd" {
			if got := etcdLeaseTTL(t, reg, "user", u.ID); got != registerTTL {
				t.Fatalf("lease of %s: TTL %v, want %v", u.ID, got, registerTTL)
			}
		}
		u.MustSignal(t, syscall.SIGSTOP) // Stop, at cleanup, resumes it first
		paused := time.Now()
		if !slices.Contains(reg.MustIDs(t, "user"), u.ID) {
			t.Fatalf("%s gone as soon as it was paused: removed, not expired", u.ID)
		}
		// Its last refresh was at most one interval before the pause.
		poll.Eventually(t, registerTTL+2*time.Second, goneFrom(t, reg, u))
		if took := time.Since(paused); reg.Name == "etcd" && took < registerTTL-registerInterval-time.Second {
			t.Errorf("%s gone %v after the pause: sooner than its TTL (%v) can run out", u.ID, took.Round(time.Millisecond), registerTTL)
		}
		switch reg.Name {
		case "consul":
			if got := consulChecks(t, reg, u.ID); !slices.Contains(got, "http critical") {
				t.Errorf("Consul checks of %s: %v, want its HTTP check critical", u.ID, got)
			}
		case "etcd":
			// goneFrom read the keys: the lease took the key with it.
		default:
			t.Fatalf("no expiry check for registry %s", reg.Name)
		}
	})
}

// goneFrom checks that the registry no longer lists n.
func goneFrom(tb testing.TB, reg *stack.Registry, n *stack.Node) func() error {
	return func() error {
		if slices.Contains(reg.MustIDs(tb, "user"), n.ID) {
			return fmt.Errorf("%s (%s) still registered", n.Name, n.ID)
		}
		return nil
	}
}

// assertNoFailures fails tb if a request of results failed, or fewer than
// minOK succeeded.
func assertNoFailures(tb testing.TB, results []result, minOK int) {
	tb.Helper()
	ok, failures := outcome(results)
	if len(failures) > 0 {
		shown := failures[:min(len(failures), 10)]
		tb.Errorf("%d of %d requests failed; the first:\n%s", len(failures), len(results), strings.Join(shown, "\n"))
	}
	if ok < minOK {
		tb.Errorf("%d requests succeeded, want at least %d", ok, minOK)
	}
}

func TestBadRegistryFlagExits2(t *testing.T) {
	skipIfShort(t)
	t.Run("unknown registry", func(t *testing.T) {
		stdout, stderr, err := runUser(t, "--registry", "zk", "--server_address", "127.0.0.1:0")
		if code := exitCode(t, err); code != 2 {
			t.Errorf("exit status %d, want 2", code)
		}
		if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
			t.Errorf("stderr is not one line: %q", stderr)
		}
		for _, name := range []string{"zk", "consul", "etcd", "mdns", "memory"} {
			if !strings.Contains(stderr, name) {
				t.Errorf("stderr does not name %s: %q", name, stderr)
			}
		}
		// A usage error is reported before anything starts or registers.
		if stdout != "" {
			t.Errorf("stdout: %q, want nothing", stdout)
		}
	})
	t.Run("unreachable registry", func(t *testing.T) {
		closed := stack.MustFreeAddr(t)
		_, stderr, err := runUser(t, "--registry", "etcd", "--registry_address", closed,
			"--registry_attempts", "2", "--registry_timeout", "300ms", "--server_address", "127.0.0.1:0")
		if code := exitCode(t, err); code == 0 {
			t.Errorf("exit status 0, want non-zero")
		}
		if !strings.Contains(stderr, "unreachable") {
			t.Errorf("stderr does not say the registry is unreachable: %q", stderr)
		}
	})
}

// runUser runs the user service to completion, bounded by 10s.
func runUser(tb testing.TB, args ...string) (stdout, stderr string, err error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "user"), args...)
	cmd.Env = stack.HermeticEnv()
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if ctx.Err() != nil {
		tb.Fatalf("user %v still running after 10s; stderr:\n%s", args, errOut.String())
	}
	return out.String(), errOut.String(), err
}

// exitCode is the status of a process that ran and exited.
func exitCode(tb testing.TB, err error) int {
	tb.Helper()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		tb.Fatal(err)
	}
	if exit != nil {
		return exit.ExitCode()
	}
	return 0
}
