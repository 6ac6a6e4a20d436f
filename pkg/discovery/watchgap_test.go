package discovery

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"go-micro.dev/v4/registry"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/internal/stack"
)

// gatedWatch holds every Watch until open is closed: the gap between a
// cache's first lookup and its watch (go-micro's cache starts the watch
// from a goroutine of its own, after up to 100 ms of jitter), made as long
// as the test needs.
type gatedWatch struct {
	registry.Registry
	open chan struct{}
}

func (g *gatedWatch) Watch(opts ...registry.WatchOption) (registry.Watcher, error) {
	<-g.open
	return g.Registry.Watch(opts...)
}

// TestCacheDropsInstanceGoneBeforeWatch: an instance that leaves between a
// caller's first lookup and the start of its watch is dropped from the
// caller's cache once the watch runs. Neither registry tells the new watch
// of it: etcd's watch starts after the delete, and the Consul plugin's
// first answer lists the instances as they are then, which go-micro's cache
// adds to what it holds and drops none (CI once saw a paused, critical
// instance still listed by a caller 4.4 s later: TestHungInstanceLeavesCallers).
func TestCacheDropsInstanceGoneBeforeWatch(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Consul and etcd")
	}
	for _, name := range []string{"consul", "etcd"} {
		for _, kind := range callerCaches {
			t.Run(name+"/"+kind, func(t *testing.T) { testCacheDropsInstanceGoneBeforeWatch(t, name, kind) })
		}
	}
}

func testCacheDropsInstanceGoneBeforeWatch(t *testing.T, name, kind string) {
	reg := stack.MustStartRegistry(t, name)
	r, err := New(Config{Name: name, Addresses: []string{reg.Addr}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	node := func(id string) *registry.Service {
		return &registry.Service{Name: "user", Version: "latest", Nodes: []*registry.Node{{Id: id, Address: "127.0.0.1:1"}}}
	}
	for _, id := range []string{"user-1", "user-2"} {
		if err := r.Register(node(id), registry.RegisterTTL(time.Minute)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Deregister(node(id)) })
	}
	g := &gatedWatch{Registry: StaleOnError(r, time.Second, 10*time.Second, t.Logf), open: make(chan struct{})}
	c := newCallerCache(kind, g, time.Minute)
	t.Cleanup(c.Stop)
	listed := func() []string {
		svcs, err := c.GetService("user")
		if err != nil {
			t.Fatalf("caller's lookup of user: %v", err)
		}
		var ids []string
		for _, s := range svcs {
			for _, n := range s.Nodes {
				ids = append(ids, n.Id)
			}
		}
		slices.Sort(ids)
		return ids
	}
	if got := listed(); !slices.Equal(got, []string{"user-1", "user-2"}) {
		t.Fatalf("first lookup: %v, want both", got)
	}
	if err := r.Deregister(node("user-2")); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 5*time.Second, func() error {
		if ids, err := reg.IDs("user"); err != nil || slices.Contains(ids, "user-2") {
			return fmt.Errorf("registry still lists user-2: %v, %v", ids, err)
		}
		return nil
	})
	close(g.open)
	// Well within the resync interval (5 s): dropped by the watch's
	// start, not by a later lookup.
	poll.Eventually(t, 2*time.Second, func() error {
		if got := listed(); !slices.Equal(got, []string{"user-1"}) {
			return fmt.Errorf("caller lists %v after the watch started, want user-1 alone", got)
		}
		return nil
	})
}
