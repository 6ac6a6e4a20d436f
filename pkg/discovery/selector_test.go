package discovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/registry/cache"
	"go-micro.dev/v4/selector"

	"github.com/example/micro-starter/internal/poll"
)

// firstNode is a strategy that allocates nothing: the first node, always.
func firstNode(services []*registry.Service) selector.Next {
	n := services[0].Nodes[0]
	return func() (*registry.Node, error) { return n, nil }
}

func registerNodes(tb testing.TB, reg registry.Registry, service string, ids ...string) {
	tb.Helper()
	for _, id := range ids {
		svc := &registry.Service{Name: service, Version: "latest", Nodes: []*registry.Node{{Id: id, Address: "127.0.0.1:1"}}}
		if err := reg.Register(svc); err != nil {
			tb.Fatal(err)
		}
	}
}

func nodeIDs(services []*registry.Service) []string {
	var ids []string
	for _, s := range services {
		for _, n := range s.Nodes {
			ids = append(ids, n.Id)
		}
	}
	slices.Sort(ids)
	return ids
}

// The cached list is handed out as it is: go-micro's selector copied every
// service and node of it at every Select (8 allocations with two instances).
func TestSelectAllocatesNothing(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	registerNodes(t, reg, "user", "user-1", "user-2")
	none := func() (*registry.Node, error) { return nil, selector.ErrNoneAvailable }
	sel := NewSelector(selector.Registry(reg), selector.SetStrategy(func([]*registry.Service) selector.Next { return none }))
	t.Cleanup(func() { _ = sel.Close() })
	if _, err := sel.Select("user"); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := sel.Select("user"); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Errorf("%.0f allocations per Select, want 0", allocs)
	}
}

// watchedRegistry tells when the cache's watch has started.
type watchedRegistry struct {
	registry.Registry
	watching chan struct{}
}

func (w *watchedRegistry) Watch(opts ...registry.WatchOption) (registry.Watcher, error) {
	wt, err := w.Registry.Watch(opts...)
	select {
	case w.watching <- struct{}{}:
	default:
	}
	return wt, err
}

// A list once handed out never changes: a watch event replaces it. Strategies
// keep what they are given (pkg/wrappers sorts each list once).
func TestSelectedListsNeverChange(t *testing.T) {
	reg := &watchedRegistry{Registry: registry.NewMemoryRegistry(), watching: make(chan struct{}, 1)}
	registerNodes(t, reg, "user", "user-1", "user-2")
	var got atomic.Pointer[[]*registry.Service]
	keep := func(services []*registry.Service) selector.Next {
		got.Store(&services)
		return firstNode(services)
	}
	sel := NewSelector(selector.Registry(reg), selector.SetStrategy(keep))
	t.Cleanup(func() { _ = sel.Close() })
	lists := func() []*registry.Service {
		t.Helper()
		if _, err := sel.Select("user"); err != nil {
			t.Fatal(err)
		}
		return *got.Load()
	}
	first := lists()
	// What the first list held, copied, to compare with after the events.
	before := fmt.Sprintf("%+v", nodeIDs(first))
	nodes := first[0].Nodes
	select {
	case <-reg.watching:
	case <-time.After(5 * time.Second):
		t.Fatal("the cache did not watch user")
	}
	registerNodes(t, reg, "user", "user-3")
	poll.Eventually(t, 5*time.Second, func() error {
		if ids := nodeIDs(lists()); !slices.Equal(ids, []string{"user-1", "user-2", "user-3"}) {
			return fmt.Errorf("selected %v after user-3 registered", ids)
		}
		return nil
	})
	if err := reg.Deregister(&registry.Service{Name: "user", Version: "latest", Nodes: []*registry.Node{{Id: "user-1"}}}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 5*time.Second, func() error {
		if ids := nodeIDs(lists()); !slices.Equal(ids, []string{"user-2", "user-3"}) {
			return fmt.Errorf("selected %v after user-1 left", ids)
		}
		return nil
	})
	if after := fmt.Sprintf("%+v", nodeIDs(first)); after != before || len(first[0].Nodes) != len(nodes) || &first[0].Nodes[0] != &nodes[0] {
		t.Errorf("the first list changed: %s, was %s", after, before)
	}
}

// failingRegistry fails every lookup while down is set.
type failingRegistry struct {
	registry.Registry
	down    atomic.Bool
	lookups atomic.Int64
}

func (f *failingRegistry) GetService(name string, opts ...registry.GetOption) ([]*registry.Service, error) {
	f.lookups.Add(1)
	if f.down.Load() {
		return nil, errors.New("registry down")
	}
	return f.Registry.GetService(name, opts...)
}

// As go-micro's cache: a list is used for the TTL, then looked up again;
// when that lookup fails the last list is served; a service the registry
// does not know is ErrNotFound, and a filter that leaves nothing
// ErrNoneAvailable.
func TestSelectorCache(t *testing.T) {
	reg := &failingRegistry{Registry: registry.NewMemoryRegistry()}
	registerNodes(t, reg, "user", "user-1")
	ctx := context.WithValue(context.Background(), "selector_ttl", 50*time.Millisecond) //nolint:staticcheck // go-micro's key
	sel := NewSelector(selector.Registry(reg), selector.SetStrategy(firstNode), func(o *selector.Options) { o.Context = ctx })
	t.Cleanup(func() { _ = sel.Close() })
	for range 3 {
		if _, err := sel.Select("user"); err != nil {
			t.Fatal(err)
		}
	}
	if n := reg.lookups.Load(); n != 1 {
		t.Errorf("%d lookups within the TTL, want 1", n)
	}
	poll.Eventually(t, 5*time.Second, func() error {
		if _, err := sel.Select("user"); err != nil {
			return poll.Final(err)
		}
		if n := reg.lookups.Load(); n < 2 {
			return fmt.Errorf("%d lookups, want another after the TTL", n)
		}
		return nil
	})
	reg.down.Store(true)
	down := reg.lookups.Load()
	poll.Eventually(t, 5*time.Second, func() error {
		next, err := sel.Select("user")
		if err != nil {
			return poll.Final(fmt.Errorf("registry down: %v, want the last list", err))
		}
		if n, _ := next(); n.Id != "user-1" {
			return poll.Final(fmt.Errorf("registry down: selected %s, want user-1", n.Id))
		}
		if reg.lookups.Load() == down {
			return errors.New("no lookup yet since the registry went down")
		}
		return nil
	})
	if _, err := sel.Select("nobody"); err == nil {
		t.Error("an unknown service while the registry is down: no error")
	}
	reg.down.Store(false)
	if _, err := sel.Select("nobody"); !errors.Is(err, selector.ErrNotFound) {
		t.Errorf("an unknown service: %v, want %v", err, selector.ErrNotFound)
	}
	none := selector.WithFilter(func([]*registry.Service) []*registry.Service { return nil })
	if _, err := sel.Select("user", none); !errors.Is(err, selector.ErrNoneAvailable) {
		t.Errorf("everything filtered out: %v, want %v", err, selector.ErrNoneAvailable)
	}
}

// callerCache is a registry cache as a caller looks services up through:
// go-micro's (registry/cache) or NewSelector's, which the services' clients
// use.
type callerCache interface {
	GetService(name string, opts ...registry.GetOption) ([]*registry.Service, error)
	Stop()
}

var callerCaches = []string{"go-micro", "selector"}

func newCallerCache(kind string, r registry.Registry, ttl time.Duration) callerCache {
	if kind == "go-micro" {
		return cache.New(r, cache.WithTTL(ttl))
	}
	return selectorCache{newCache(r, ttl)}
}

type selectorCache struct{ *snapshotCache }

func (c selectorCache) GetService(name string, _ ...registry.GetOption) ([]*registry.Service, error) {
	return c.get(name)
}

func (c selectorCache) Stop() { c.stop() }
