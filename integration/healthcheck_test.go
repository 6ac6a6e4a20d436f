package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"go-micro.dev/v4/registry/cache"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/internal/stack"
	"github.com/example/micro-starter/pkg/discovery"
)

// attemptTimeout is the services' default --client_attempt_timeout: a call
// that tried a hung instance waited this long for it.
const attemptTimeout = 1500 * time.Millisecond

// TestHungInstanceLeavesCallers: one of two user instances hangs (SIGSTOP:
// alive, its port accepting connections, never answering) under load
// through the gateway. The registry marks it critical (Consul's HTTP check)
// or lets its lease run out (etcd), a caller's watched list drops it
// within the registry's bound, and no request sent after the drop fails or
// waits for the hung instance. Resumed, it is listed again.
//
// Until the drop, a call that reaches the hung instance waits out an
// attempt timeout, which is also the attempt timeout of the hop above (the
// gateway's call of hello): the gateway retries, and a request fails only
// if all three of its attempts reach it. Consul drops it before a third
// attempt starts, so no request fails; etcd only after up to 10 s, and a
// few requests may fail meanwhile (logged, and counted by make chaos T7).
func TestHungInstanceLeavesCallers(t *testing.T) {
	skipIfShort(t)
	for _, tc := range []struct {
		registry string
		critical time.Duration // Consul: its HTTP check critical within this; 0: no check
		dropped  time.Duration // gone from a caller's list within this of the pause
		failOK   bool          // requests sent before the drop may fail
	}{
		// Check every 2 s, 1 s timeout: critical within 3 s; 5 s leaves room.
		{"consul", 5 * time.Second, 6 * time.Second, false},
		// The lease of the register TTL, last renewed up to one interval
		// (5 s) before the pause; etcd expires leases twice a second.
		{"etcd", 0, registerTTL + time.Second, true},
	} {
		t.Run(tc.registry, func(t *testing.T) {
			reg := stack.MustStartRegistry(t, tc.registry)
			s := mustStartSystem(t, reg, 2)
			list := callerList(t, reg)
			l := startLoad(t, s.url+"/hello?user_id=ada", 6) // 300 requests/s
			l.waitForResults(t, time.Now(), 150)

			victim := s.users[0]
			if err := victim.Pause(); err != nil {
				t.Fatal(err)
			}
			paused := time.Now()
			t.Cleanup(func() { _ = victim.Resume() })

			if tc.critical > 0 {
				poll.Eventually(t, time.Until(paused.Add(tc.critical)), func() error {
					if got := consulChecks(t, reg, victim.ID); !slices.Contains(got, "http critical") {
						return fmt.Errorf("Consul checks of %s: %v, want its HTTP check critical", victim.ID, got)
					}
					return nil
				})
				t.Logf("HTTP check critical %v after the pause", time.Since(paused).Round(10*time.Millisecond))
			}
			poll.Eventually(t, time.Until(paused.Add(tc.dropped)), func() error {
				if ids := list(); slices.Contains(ids, victim.ID) {
					return fmt.Errorf("a caller still lists %s: %v", victim.ID, ids)
				}
				return nil
			})
			dropped := time.Now()
			t.Logf("dropped from a caller's list %v after the pause (bound %v)", dropped.Sub(paused).Round(10*time.Millisecond), tc.dropped)

			// The gateway and hello learn of it from their own watches, a
			// moment apart from ours.
			after := dropped.Add(500 * time.Millisecond)
			l.waitForResults(t, after, 600)

			if err := victim.Resume(); err != nil {
				t.Fatal(err)
			}
			// Its next re-registration (every 5 s) lists it again.
			poll.Eventually(t, 5*time.Second+2*time.Second, func() error {
				if ids := list(); !slices.Contains(ids, victim.ID) {
					return fmt.Errorf("%s not listed again after resuming: %v", victim.ID, ids)
				}
				return nil
			})

			results := l.stop()
			var failed, failedBefore []string
			var since []time.Duration
			for _, r := range results {
				if r.err != nil {
					line := r.String()
					if tc.failOK && r.at.Before(dropped) {
						failedBefore = append(failedBefore, line)
					} else {
						failed = append(failed, line)
					}
				}
				if r.at.After(after) {
					since = append(since, r.took)
				}
			}
			if len(failedBefore) > 0 {
				t.Logf("%d of %d requests sent before the drop failed:\n%s", len(failedBefore), len(results), strings.Join(failedBefore, "\n"))
			}
			if len(failed) > 0 {
				t.Errorf("%d of %d requests failed; the first:\n%s", len(failed), len(results), strings.Join(failed[:min(len(failed), 10)], "\n"))
			}
			sort.Slice(since, func(i, j int) bool { return since[i] < since[j] })
			slowest := since[len(since)-1]
			t.Logf("%d requests after the drop: p99 %v, slowest %v", len(since), since[len(since)*99/100].Round(time.Millisecond), slowest.Round(time.Millisecond))
			// A request whose call reached the hung instance waited a
			// whole attempt timeout for it before failing over.
			if slowest >= attemptTimeout {
				t.Errorf("a request sent after the drop took %v: a call waited for the hung instance (attempt timeout %v)", slowest.Round(time.Millisecond), attemptTimeout)
			}
		})
	}
}

// callerList returns a function listing the user instances a caller sees:
// go-micro's registry cache over a registry client and StaleOnError as the
// services build them (pkg/service), kept fresh by watching, which is how
// the services' clients look up.
func callerList(tb testing.TB, reg *stack.Registry) func() []string {
	tb.Helper()
	cfg := discovery.Default()
	cfg.Name, cfg.Addresses = reg.Name, []string{reg.Addr}
	r, err := discovery.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	c := cache.New(discovery.StaleOnError(r, time.Second, registerTTL, tb.Logf))
	tb.Cleanup(c.Stop)
	return func() []string {
		svcs, err := c.GetService("user")
		if err != nil {
			tb.Fatalf("caller's lookup of user: %v", err)
		}
		var ids []string
		for _, s := range svcs {
			for _, n := range s.Nodes {
				ids = append(ids, n.Id)
			}
		}
		return ids
	}
}

// TestConsulRegistersHealthCheck: with Consul each instance has the HTTP
// check of GET /health that Consul runs, and no TTL check (a stalled agent
// would expire it: TestConsulStallExpiresNoLiveInstance), passing and
// staying so across re-registrations, with a token that may write only its
// own service (internal/regauth's policy). SIGTERM removes it.
func TestConsulRegistersHealthCheck(t *testing.T) {
	forEachLockedRegistry(t, func(t *testing.T, reg *lockedRegistry) {
		if reg.Name != "consul" {
			t.Skip("etcd has no checks: a key under a lease")
		}
		const ttl = 2 * time.Second
		u := mustStartService(t, reg.Registry, "user", "user",
			append(reg.credentials(t, "user"), "--register_ttl", ttl.String(), "--register_interval", "500ms")...)
		want := []string{"http passing"}
		checks := func() []string { return consulChecksAs(t, reg.Addr, reg.secret, u.ID) }
		poll.Eventually(t, 5*time.Second, func() error {
			if got := checks(); !slices.Equal(got, want) {
				return fmt.Errorf("Consul checks of %s: %v, want %v", u.ID, got, want)
			}
			return nil
		})
		// For three TTLs, re-registering every 500 ms: nothing adds a TTL
		// check back, and the HTTP check runs meanwhile.
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for end := time.Now().Add(3 * ttl); time.Now().Before(end); <-tick.C {
			if got := checks(); !slices.Equal(got, want) {
				t.Fatalf("Consul checks of %s: %v, want %v\n--- user ---\n%s", u.ID, got, want, u.Tail(20))
			}
		}
		u.MustSignal(t, syscall.SIGTERM)
		poll.Eventually(t, 5*time.Second, func() error {
			if got := checks(); len(got) > 0 {
				return fmt.Errorf("checks of %s after SIGTERM: %v", u.ID, got)
			}
			return nil
		})
	})
}

// consulChecksAs is consulChecks through an agent with ACLs, with token.
func consulChecksAs(tb testing.TB, addr, token, id string) []string {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/agent/checks", nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("X-Consul-Token", token)
	rsp, err := registryClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer rsp.Body.Close()
	var checks map[string]struct{ ServiceID, Type, Status string }
	if err := json.NewDecoder(rsp.Body).Decode(&checks); err != nil {
		tb.Fatalf("Consul's checks: %s: %v", rsp.Status, err)
	}
	var out []string
	for _, c := range checks {
		if c.ServiceID == id {
			out = append(out, c.Type+" "+c.Status)
		}
	}
	slices.Sort(out)
	return out
}
