package wrappers

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"

	"github.com/example/micro-starter/pkg/discovery"
)

// TestSickInstanceIsEjected: one of two instances answers every call with a
// 500. The breaker counts per endpoint and service errors are never
// retried, so without outlier detection half the calls fail.
func TestSickInstanceIsEjected(t *testing.T) {
	for _, strategy := range []string{"roundrobin", "random"} {
		t.Run(strategy, func(t *testing.T) {
			reg := registry.NewMemoryRegistry()
			svc := serviceName(t)
			mustServe(t, reg, svc, "healthy")
			sick := mustServe(t, reg, svc, "sick")
			sick.fail.Store(merrors.InternalServerError(svc, "sick").(*merrors.Error))
			cfg := DefaultConfig()
			cfg.Strategy = strategy
			c := mustClient(t, reg, cfg)

			const callers, calls = 8, 250
			var failed atomic.Int64
			var wg sync.WaitGroup
			for range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range calls {
						if _, err := call(context.Background(), c, svc); err != nil {
							failed.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			// Each caller may send a call or two to the sick instance before
			// the others' failures eject it: at most 1 % of all calls (the
			// target of bench/chaos T4), where without ejection half fail.
			if got, limit := failed.Load(), int64(callers*calls/100); got > limit {
				t.Fatalf("%d of %d calls failed, want at most %d", got, callers*calls, limit)
			}
			if sick.calls.Load() == 0 {
				t.Fatal("the sick instance was never called: the test proves nothing")
			}
		})
	}
}

// flakyRegistry is a registry that can stop answering: while down, lookups
// block until the test ends, as against a stopped (SIGSTOP) Consul whose
// HTTP client has no timeout, and new watches fail.
type flakyRegistry struct {
	registry.Registry
	down    atomic.Bool
	lookups atomic.Int64 // lookups while down
	hung    chan struct{}
}

func (f *flakyRegistry) GetService(name string, opts ...registry.GetOption) ([]*registry.Service, error) {
	if f.down.Load() {
		f.lookups.Add(1)
		<-f.hung
		return nil, errors.New("registry gone")
	}
	return f.Registry.GetService(name, opts...)
}

func (f *flakyRegistry) Watch(opts ...registry.WatchOption) (registry.Watcher, error) {
	if f.down.Load() {
		return nil, errors.New("registry gone")
	}
	return f.Registry.Watch(opts...)
}

// TestRegistryOutageLongerThanCacheTTL: calls between running services go
// on when the registry stops answering for longer than the client's cache
// TTL. go-micro's cache serves a stale list on error but never extends it:
// after the TTL every call waits on the registry again.
func TestRegistryOutageLongerThanCacheTTL(t *testing.T) {
	mem := registry.NewMemoryRegistry()
	flaky := &flakyRegistry{Registry: mem, hung: make(chan struct{})}
	t.Cleanup(func() { close(flaky.hung) })
	svc := serviceName(t)
	mustServe(t, mem, svc, "a")
	mustServe(t, mem, svc, "b")
	cfg := DefaultConfig()
	cfg.CacheTTL = 100 * time.Millisecond
	cfg.RequestTimeout = time.Second // a call stuck on a lookup fails fast
	cfg.AttemptTimeout = 500 * time.Millisecond
	c := mustClient(t, discovery.StaleOnError(flaky, 200*time.Millisecond, time.Minute, t.Logf), cfg)
	if _, err := call(context.Background(), c, svc); err != nil {
		t.Fatal(err)
	}

	flaky.down.Store(true)
	// Call until the cache has expired and been refreshed at least twice
	// from the last good answer.
	for i := 0; flaky.lookups.Load() < 3; i++ {
		if _, err := call(context.Background(), c, svc); err != nil {
			t.Fatalf("call %d during the outage (%d lookups): %v", i, flaky.lookups.Load(), err)
		}
	}
}
