package discovery

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go-micro.dev/v4/registry"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/internal/stack"
)

// countedLookups counts the lookups and watches that reach what it wraps.
type countedLookups struct {
	registry.Registry
	n, watches atomic.Int64
}

func (c *countedLookups) Watch(opts ...registry.WatchOption) (registry.Watcher, error) {
	c.watches.Add(1)
	return c.Registry.Watch(opts...)
}

func (c *countedLookups) GetService(name string, opts ...registry.GetOption) ([]*registry.Service, error) {
	c.n.Add(1)
	return c.Registry.GetService(name, opts...)
}

// TestEtcdPausedPastTTLKeepsCallersCache: an etcd paused for longer than
// the register TTL expires the leases of live instances by its own clock as
// it resumes, and its watch deletes them all at once. A caller's cache
// (go-micro's or NewSelector's, on StaleOnError, as the services' clients) must keep the
// service rather than drop it and send every call to a lookup of a registry
// that just resumed: in bench/chaos T9 (one etcd paused 60 s) the gateway's
// calls waited on such lookups until its breaker rejected some.
func TestEtcdPausedPastTTLKeepsCallersCache(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	for _, kind := range callerCaches {
		t.Run(kind, func(t *testing.T) { testEtcdPausedPastTTL(t, kind) })
	}
}

func testEtcdPausedPastTTL(t *testing.T, kind string) {
	const ttl = time.Second
	reg := stack.MustStartRegistry(t, "etcd")
	r, err := New(Config{Name: "etcd", Addresses: []string{reg.Addr}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	svc := &registry.Service{Name: "user", Nodes: []*registry.Node{{Id: "user-1", Address: "127.0.0.1:1"}}}
	if err := r.Register(svc, registry.RegisterTTL(ttl)); err != nil {
		t.Fatal(err)
	}
	// Counted above StaleOnError: the cache's lookups, not its watch's resyncs.
	counted := &countedLookups{Registry: StaleOnError(r, time.Second, 10*time.Second, t.Logf)}
	c := newCallerCache(kind, counted, time.Minute)
	t.Cleanup(c.Stop)
	if svcs, err := c.GetService("user"); err != nil || countNodes(svcs) != 1 {
		t.Fatalf("before the pause: %v, %v; want user-1", svcs, err)
	}
	// The cache watches the service from a goroutine of its own.
	poll.Eventually(t, 5*time.Second, func() error {
		if counted.watches.Load() == 0 {
			return errors.New("the cache does not watch user yet")
		}
		return nil
	})
	lookups := counted.n.Load()

	if err := reg.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Resume() })
	time.Sleep(ttl + time.Second) // not a synchronisation: the stall itself
	if err := reg.Resume(); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 10*time.Second, func() error {
		ids, err := reg.IDs("user")
		if err != nil || len(ids) > 0 {
			return errors.New("user-1's lease not expired yet")
		}
		return nil
	})
	// The watch's delete follows within milliseconds; the cache must not
	// have dropped the service because of it.
	for end := time.Now().Add(time.Second); time.Now().Before(end); {
		svcs, err := c.GetService("user")
		if err != nil || countNodes(svcs) != 1 {
			t.Fatalf("after the lease expired: %v, %v; want user-1 still", svcs, err)
		}
		if n := counted.n.Load(); n != lookups {
			t.Fatalf("%d lookups after the lease expired: the cache dropped the service and calls wait on the registry", n-lookups)
		}
	}
}
