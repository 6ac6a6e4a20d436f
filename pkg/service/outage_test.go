package service

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go-micro.dev/v4/registry"

	"github.com/example/micro-starter/internal/poll"
)

// outageRegistry is a memory registry that can go away. While it is away,
// Register and Deregister block, and keep blocking after it is back, like
// the etcd plugin's KeepAliveOnce(context.TODO()) on a client waiting out
// gRPC's reconnect backoff. Coming back, it has forgotten every instance,
// as a restarted Consul in dev mode or an etcd whose leases expired.
type outageRegistry struct {
	registry.Registry
	hung     chan struct{} // closed when the test ends
	mu       sync.Mutex
	down     bool
	attempts atomic.Int64 // calls made while down
}

func newOutageRegistry(tb testing.TB) *outageRegistry {
	o := &outageRegistry{Registry: registry.NewMemoryRegistry(), hung: make(chan struct{})}
	tb.Cleanup(func() { close(o.hung) })
	return o
}

func (o *outageRegistry) setDown(down bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.down = down
	if !down {
		svcs, _ := o.Registry.ListServices()
		for _, s := range svcs {
			full, _ := o.Registry.GetService(s.Name)
			for _, f := range full {
				_ = o.Registry.Deregister(f)
			}
		}
	}
}

func (o *outageRegistry) block() {
	o.mu.Lock()
	down := o.down
	o.mu.Unlock()
	if down {
		o.attempts.Add(1)
		<-o.hung
	}
}

func (o *outageRegistry) Register(s *registry.Service, opts ...registry.RegisterOption) error {
	o.block()
	return o.Registry.Register(s, opts...)
}

func (o *outageRegistry) Deregister(s *registry.Service, opts ...registry.DeregisterOption) error {
	o.block()
	return o.Registry.Deregister(s, opts...)
}

func outageConfig() Config {
	c := testConfig()
	c.RegisterTTL = 2 * time.Second
	c.RegisterInterval = 200 * time.Millisecond
	return c
}

func mustNewOn(tb testing.TB, c Config, reg registry.Registry) *Service {
	tb.Helper()
	svc, err := newService(c, discardLogger(), reg)
	if err != nil {
		tb.Fatal(err)
	}
	return svc
}

// TestReregistersAfterRegistryOutage: a registration that hangs must not
// stop the next ones. go-micro's server re-registers from one loop, so
// without a bound on each call the first hung registration is the last.
func TestReregistersAfterRegistryOutage(t *testing.T) {
	c := outageConfig()
	reg := newOutageRegistry(t)
	svc := mustNewOn(t, c, reg)
	mustHandle(t, svc, &Echo{})
	start(t, svc)
	poll.Eventually(t, 5*time.Second, func() error { return registeredIn(reg, 1) })

	reg.setDown(true)
	poll.Eventually(t, 5*time.Second, func() error {
		if reg.attempts.Load() == 0 {
			return errNotYet
		}
		return nil
	})
	reg.setDown(false) // and the instance is forgotten
	// One interval, plus one bounded registration that may be under way.
	poll.Eventually(t, c.RegisterInterval+registryCallTimeout+time.Second, func() error { return registeredIn(reg, 1) })
}

// TestStopDuringRegistryOutage: an instance told to stop while the registry
// hangs stops within 5 s, and answers calls in flight.
func TestStopDuringRegistryOutage(t *testing.T) {
	c := outageConfig()
	reg := newOutageRegistry(t)
	svc := mustNewOn(t, c, reg)
	mustHandle(t, svc, &Echo{})
	r := start(t, svc)
	poll.Eventually(t, 5*time.Second, func() error { return registeredIn(reg, 1) })

	reg.setDown(true)
	poll.Eventually(t, 5*time.Second, func() error {
		if reg.attempts.Load() == 0 {
			return errNotYet
		}
		return nil
	})
	r.cancel()
	r.mustReturn(t, 5*time.Second)
}

var errNotYet = errorString("not yet")

type errorString string

func (e errorString) Error() string { return string(e) }
