package perf

import (
	"fmt"
	"testing"
	"time"

	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/internal/stack"
	"github.com/example/micro-starter/pkg/discovery"
)

// BenchmarkLookup finds the instances of "user" (two registered) in a real
// Consul and a real etcd on loopback:
//   - registry: GetService on the registry as pkg/discovery builds it, one
//     round trip to the server per lookup (what a cache miss costs);
//   - cache: Select on a selector over it, as the client chain does for
//     every call: served from go-micro's cache, which a watch keeps fresh.
//
// Needs consul and etcd on PATH (make bench puts bin/ there); skipped with
// -short.
func BenchmarkLookup(b *testing.B) {
	if testing.Short() {
		b.Skip("starts Consul and etcd")
	}
	for _, name := range []string{"consul", "etcd"} {
		srv, err := stack.StartRegistry(b.TempDir(), name, "")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(srv.Stop)
		reg, err := discovery.New(discovery.Config{Name: name, Addresses: []string{srv.Addr}, Timeout: 5 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		for _, id := range []string{"user-a", "user-b"} {
			svc := &registry.Service{Name: "user", Version: "latest", Nodes: []*registry.Node{{Id: id, Address: "127.0.0.1:1"}}}
			if err := reg.Register(svc, registry.RegisterTTL(time.Minute)); err != nil {
				b.Fatal(err)
			}
		}
		sel := selector.NewSelector(selector.Registry(discovery.StaleOnError(reg, time.Second, 10*time.Second, func(string, ...any) {})))
		b.Cleanup(func() { _ = sel.Close() })
		// Wait until both are visible, then warm the cache.
		poll.Eventually(b, 10*time.Second, func() error {
			s, err := reg.GetService("user")
			if err == nil && countNodes(s) != 2 {
				err = fmt.Errorf("%s lists %d user instances, want 2", name, countNodes(s))
			}
			return err
		})
		if _, err := sel.Select("user"); err != nil {
			b.Fatal(err)
		}
		b.Run("registry="+name+"/from=server", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if s, err := reg.GetService("user"); err != nil || countNodes(s) != 2 {
					b.Fatalf("GetService: %d nodes, %v", countNodes(s), err)
				}
			}
		})
		b.Run("registry="+name+"/from=cache", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				next, err := sel.Select("user")
				if err != nil {
					b.Fatal(err)
				}
				if _, err := next(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func countNodes(s []*registry.Service) int {
	n := 0
	for _, x := range s {
		n += len(x.Nodes)
	}
	return n
}
