package discovery

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"go-micro.dev/v4/registry"
	util "go-micro.dev/v4/util/registry"
)

// StaleOnError wraps the registry a client looks services up in. Each
// GetService is bounded by timeout, and when the registry fails or does not
// answer in time, the last good answer for that service is returned instead
// of the error, however old: the selector's cache then keeps using it for
// another cache TTL.
//
// go-micro's cache (go-micro.dev/v4/registry/cache) already serves a stale
// list when a refresh fails, but never extends it, so once the cache TTL has
// run out every call waits on the registry again: forever with a stopped
// (SIGSTOP) Consul, whose HTTP client has no timeout, about 5 s with etcd.
// Calls between healthy services must not depend on the registry answering.
//
// An answer with no instance from a registry that does answer is also
// replaced by the last good one while that is younger than holdEmpty: a
// Consul agent restarted in dev mode has forgotten every instance until each
// re-registers, within one register interval. After holdEmpty the empty
// answer stands, so a service that really went away is reported as such.
// The hold counts from the first empty answer, not from the last good one:
// after a long outage the last good answer is old, and the registry comes
// back with the leases of every instance expired until each re-registers.
func StaleOnError(r registry.Registry, timeout, holdEmpty time.Duration, logf func(format string, args ...any)) registry.Registry {
	return &staleRegistry{Registry: r, timeout: timeout, holdEmpty: holdEmpty, logf: logf, last: map[string]*lastAnswer{}, now: time.Now}
}

type staleRegistry struct {
	registry.Registry
	timeout   time.Duration
	holdEmpty time.Duration
	logf      func(format string, args ...any)

	now func() time.Time

	mu   sync.Mutex
	last map[string]*lastAnswer
}

type lastAnswer struct {
	services   []*registry.Service
	at         time.Time
	emptySince time.Time // the first of the empty answers since, if any
}

func (s *staleRegistry) GetService(name string, opts ...registry.GetOption) ([]*registry.Service, error) {
	type result struct {
		services []*registry.Service
		err      error
	}
	done := make(chan result, 1)
	go func() {
		svcs, err := s.Registry.GetService(name, opts...)
		done <- result{svcs, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-time.After(s.timeout):
		res.err = fmt.Errorf("no answer within %v", s.timeout)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	last, ok := s.last[name]
	switch {
	case res.err == nil && countNodes(res.services) > 0:
		s.last[name] = &lastAnswer{services: util.Copy(res.services), at: s.now()}
		return res.services, nil
	case !ok:
		return res.services, res.err
	case res.err == nil || errors.Is(res.err, registry.ErrNotFound):
		if last.emptySince.IsZero() {
			last.emptySince = s.now()
		}
		if s.now().Sub(last.emptySince) > s.holdEmpty {
			delete(s.last, name)
			return res.services, res.err
		}
		s.logf("registry lists no instance of %s: using the %d it listed %v ago", name, countNodes(last.services), s.now().Sub(last.at).Round(time.Millisecond))
	default:
		s.logf("registry lookup of %s failed (%v): using the last answer, %d instances, from %v ago", name, res.err, countNodes(last.services), s.now().Sub(last.at).Round(time.Millisecond))
	}
	return util.Copy(last.services), nil
}
