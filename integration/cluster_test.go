package integration

import (
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/internal/stack"
)

// forEachCluster runs test against a three-member etcd cluster and against
// three Consul servers with a client agent, as forEachRegistry does against
// one server each.
func forEachCluster(t *testing.T, test func(t *testing.T, c *stack.Cluster)) {
	skipIfShort(t)
	for _, name := range []string{"consul", "etcd"} {
		t.Run(name, func(t *testing.T) { test(t, stack.MustStartCluster(t, name)) })
	}
}

// mustStartClusterSystem is mustStartSystem against every address of c.
func mustStartClusterSystem(tb testing.TB, c *stack.Cluster, users int, args ...string) *system {
	tb.Helper()
	s := &system{}
	for i := range users {
		s.users = append(s.users, c.MustStartNode(tb, "user-"+strconv.Itoa(i+1), "user", filepath.Join(binDir, "user"), args...))
	}
	s.hello = c.MustStartNode(tb, "hello", "hello", filepath.Join(binDir, "hello"), args...)
	s.gateway = c.MustStartNode(tb, "gateway", "gateway", filepath.Join(binDir, "gateway"), append(args, "--http_address", "127.0.0.1:0")...)
	s.url = gatewayURL(tb, s.gateway)
	tb.Cleanup(func() {
		for _, n := range append([]*stack.Node{s.gateway, s.hello}, s.users...) {
			n.MustSignal(tb, syscall.SIGTERM)
		}
	})
	poll.Eventually(tb, 20*time.Second, func() error {
		if code := get(tb, s.url+"/readyz", nil); code != http.StatusOK {
			return fmt.Errorf("GET /readyz: %d", code)
		}
		return nil
	})
	return s
}

// listWatch reads the user instances the cluster lists every 50 ms and
// keeps every read in which an instance it was told to expect was missing.
type listWatch struct {
	c    *stack.Cluster
	mu   sync.Mutex
	want map[string]string // id -> name of the instances that must be listed
	lost []string
	quit chan struct{}
	done chan struct{}
}

func watchListing(tb testing.TB, c *stack.Cluster) *listWatch {
	w := &listWatch{c: c, want: map[string]string{}, quit: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	tb.Cleanup(w.stop)
	return w
}

func (w *listWatch) run() {
	defer close(w.done)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-w.quit:
			return
		case <-tick.C:
		}
		ids, err := w.c.IDs("user")
		if err != nil {
			continue // no member answered this read: that says nothing of the instances
		}
		w.mu.Lock()
		for id, name := range w.want {
			if !slices.Contains(ids, id) {
				w.lost = append(w.lost, fmt.Sprintf("%s: %s (%s) not listed: %v", time.Now().Format("15:04:05.000"), name, id, ids))
			}
		}
		w.mu.Unlock()
	}
}

// expect adds n to the instances that must stay listed; forget removes it.
func (w *listWatch) expect(n *stack.Node) { w.mu.Lock(); w.want[n.ID] = n.Name; w.mu.Unlock() }
func (w *listWatch) forget(n *stack.Node) { w.mu.Lock(); delete(w.want, n.ID); w.mu.Unlock() }

func (w *listWatch) stop() {
	select {
	case <-w.quit:
	default:
		close(w.quit)
	}
	<-w.done
}

// assertNoneLost fails tb if a healthy instance was ever missing.
func (w *listWatch) assertNoneLost(tb testing.TB) {
	tb.Helper()
	w.stop()
	if len(w.lost) > 0 {
		tb.Errorf("a healthy instance was missing from %d reads; the first:\n%s", len(w.lost), w.lost[0])
	}
}

// TestClusterSurvivesLeaderLoss is a short version of the chaos suite's T8
// and T9 (bench/chaos): the services are given every address of a
// three-member registry (Consul: its client agent first, then the three
// servers), and the registry loses members under load through the gateway.
// Lookups (a 1 s cache, so they go to the registry all along), watches,
// registration and its renewal must go on: no call fails, an instance
// started during the leader's election registers and gets calls, a
// SIGTERMed one leaves within 2 s, and no healthy instance is ever missing
// from what the registry lists.
//
// Then the member the services talk to goes away: with etcd (whose client
// spreads calls over every member) a member is paused, as partitioned, for
// a few seconds; with Consul the client agent is killed, and every service
// fails over to the next address and registers there (registrations belong
// to the agent: they go with it, so here instances are allowed to be
// missing until they have registered again).
func TestClusterSurvivesLeaderLoss(t *testing.T) {
	forEachCluster(t, func(t *testing.T, c *stack.Cluster) {
		s := mustStartClusterSystem(t, c, 2, "--registry_cache_ttl", "1s")
		listed := watchListing(t, c)
		for _, u := range s.users {
			listed.expect(u)
		}
		l := startLoad(t, s.url+"/hello?user_id=ada", 4)
		l.waitForSuccesses(t, 50)

		leader, err := c.Leader()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Kill(leader); err != nil {
			t.Fatal(err)
		}
		// Started at once, while the others elect a leader.
		joining := c.MustStartNode(t, "user-3", "user", filepath.Join(binDir, "user"), "--registry_cache_ttl", "1s")
		listed.expect(joining)
		if _, err := c.WaitLeader(30 * time.Second); err != nil {
			t.Fatalf("no leader after %s was killed: %v", leader.Name, err)
		}
		poll.Eventually(t, 10*time.Second, calledThroughGateway(t, s.url, joining))

		leaving := s.users[0]
		listed.forget(leaving)
		leaving.MustSignal(t, syscall.SIGTERM)
		poll.Eventually(t, 2*time.Second, goneFromCluster(c, leaving))

		// Another member stopped and started again, the killed one back.
		follower, err := c.Follower()
		if err != nil {
			t.Fatal(err)
		}
		c.Stop(follower)
		l.waitForSuccesses(t, 50)
		for _, m := range []*stack.Member{follower, leader} {
			if err := c.Restart(m); err != nil {
				t.Fatal(err)
			}
		}
		l.waitForSuccesses(t, 50)
		listed.assertNoneLost(t)

		switch c.Name {
		case "etcd":
			m := c.Members[0]
			if err := c.Pause(m); err != nil {
				t.Fatal(err)
			}
			paused := time.Now()
			t.Cleanup(func() { _ = c.Resume(m) })
			listed = watchListing(t, c)
			for _, n := range []*stack.Node{s.users[1], joining} {
				listed.expect(n)
			}
			for time.Since(paused) < 6*time.Second {
				l.waitForSuccesses(t, 20)
			}
			if err := c.Resume(m); err != nil {
				t.Fatal(err)
			}
			listed.assertNoneLost(t)
		case "consul":
			if err := c.Kill(c.Agent); err != nil {
				t.Fatal(err)
			}
			// Each re-registers through the next address within one
			// register interval (5 s), once its renewal finds the agent gone.
			poll.Eventually(t, 5*time.Second+5*time.Second, func() error {
				is, err := c.Instances("user")
				if err != nil {
					return err
				}
				for _, n := range []*stack.Node{s.users[1], joining} {
					if !slices.ContainsFunc(is, func(i stack.Instance) bool { return i.ID == n.ID && i.Node != c.Agent.Name }) {
						return fmt.Errorf("%s (%s) not registered with another agent: %v", n.Name, n.ID, is)
					}
				}
				return nil
			})
		}
		l.waitForSuccesses(t, 50)
		assertNoFailures(t, l.stop(), 300)
	})
}

// calledThroughGateway checks that a call through the gateway at url
// reached n.
func calledThroughGateway(tb testing.TB, url string, n *stack.Node) func() error {
	return func() error {
		for range 10 {
			var rsp struct{ Instance string }
			if code := get(tb, url+"/users/ada", &rsp); code == http.StatusOK && rsp.Instance == n.ID {
				return nil
			}
		}
		return fmt.Errorf("10 calls through the gateway, none reached %s (%s)", n.Name, n.ID)
	}
}

// goneFromCluster checks that c no longer lists n.
func goneFromCluster(c *stack.Cluster, n *stack.Node) func() error {
	return func() error {
		ids, err := c.IDs("user")
		if err != nil {
			return err
		}
		if slices.Contains(ids, n.ID) {
			return fmt.Errorf("%s (%s) still registered", n.Name, n.ID)
		}
		return nil
	}
}
