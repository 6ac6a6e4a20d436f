package service

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go-micro.dev/v4/registry"

	"github.com/example/micro-starter/pkg/discovery"
)

// drainingRegistry is the registry as this instance's server sees it. The
// first Deregister starts shutdown: it waits for a re-registration already
// under way, so none can land after it, and from then on registrations are
// dropped and further deregistrations (go-micro's Stop deregisters again) are
// no-ops instead of errors from a registry that no longer knows the node.
//
// Each call to the registry is bounded by timeout: go-micro's server
// re-registers from the loop that also handles Stop, so one registration
// that hangs (the Consul plugin's HTTP client has no timeout) would stop
// both re-registration and Stop. A call that times out goes on in the
// background and the next tick tries again.
type drainingRegistry struct {
	registry.Registry
	timeout time.Duration

	mu           sync.RWMutex // held for reading by each Register
	draining     bool
	deregistered bool

	registered atomic.Bool           // a registration has succeeded (Health)
	failed     atomic.Pointer[error] // the last registration's error; nil after a success

	// healthPort is the port of GET /health, which Consul is asked to
	// check; 0: none. Set before the server starts registering.
	healthPort int
}

// lastErr is the error of the last registration, nil if it succeeded.
func (r *drainingRegistry) lastErr() error {
	if p := r.failed.Load(); p != nil {
		return *p
	}
	return nil
}

func (r *drainingRegistry) Register(s *registry.Service, opts ...registry.RegisterOption) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.draining {
		return nil
	}
	if r.healthPort > 0 {
		opts = append(slices.Clip(opts), discovery.HTTPCheck(r.healthPort))
	}
	// A registration answered after the bound has still registered the
	// instance: it counts when its answer comes. A Consul agent syncing with
	// a partitioned server answers seconds late, and meanwhile runs the HTTP
	// check; an instance that answered it 503 until the next interval was
	// marked critical and dropped by its callers (bench/chaos T9).
	var answered atomic.Bool
	var returned atomic.Pointer[error] // the error this call returned, once it did
	err := discovery.Call(context.Background(), r.timeout, func() error {
		err := r.Registry.Register(s, opts...)
		if err == nil {
			answered.Store(true)
			r.registered.Store(true)
			if p := returned.Load(); p != nil {
				r.failed.CompareAndSwap(p, nil) // unless a later call failed since
			}
		}
		return err
	})
	if err != nil {
		returned.Store(&err)
		r.failed.Store(&err)
		if answered.Load() {
			r.failed.CompareAndSwap(&err, nil)
		}
		return err
	}
	r.failed.Store(nil)
	return nil
}

func (r *drainingRegistry) Deregister(s *registry.Service, opts ...registry.DeregisterOption) error {
	r.mu.Lock()
	r.draining = true
	done := r.deregistered
	r.mu.Unlock()
	if done {
		return nil
	}
	if err := discovery.Call(context.Background(), r.timeout, func() error { return r.Registry.Deregister(s, opts...) }); err != nil {
		return err // the next Deregister tries again
	}
	r.mu.Lock()
	r.deregistered = true
	r.mu.Unlock()
	return nil
}
