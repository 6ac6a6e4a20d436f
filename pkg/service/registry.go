package service

import (
	"sync"

	"go-micro.dev/v4/registry"
)

// drainingRegistry is the registry as this instance's server sees it. The
// first Deregister starts shutdown: it waits for a re-registration already
// under way, so none can land after it, and from then on registrations are
// dropped and further deregistrations (go-micro's Stop deregisters again) are
// no-ops instead of errors from a registry that no longer knows the node.
type drainingRegistry struct {
	registry.Registry

	mu           sync.RWMutex // held for reading by each Register
	draining     bool
	deregistered bool
}

func (r *drainingRegistry) Register(s *registry.Service, opts ...registry.RegisterOption) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.draining {
		return nil
	}
	return r.Registry.Register(s, opts...)
}

func (r *drainingRegistry) Deregister(s *registry.Service, opts ...registry.DeregisterOption) error {
	r.mu.Lock()
	r.draining = true
	done := r.deregistered
	r.mu.Unlock()
	if done {
		return nil
	}
	if err := r.Registry.Deregister(s, opts...); err != nil {
		return err // the next Deregister tries again
	}
	r.mu.Lock()
	r.deregistered = true
	r.mu.Unlock()
	return nil
}
