package perf

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	grpcserver "github.com/go-micro/plugins/v4/server/grpc"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"

	"github.com/example/micro-starter/bench/plain"
	"github.com/example/micro-starter/pkg/discovery"
	"github.com/example/micro-starter/pkg/wrappers"
	userpb "github.com/example/micro-starter/services/user/proto"
)

// users answers Get like services/user does for a known id, as one instance.
type users struct{ instance string }

func (u *users) Get(_ context.Context, req *userpb.GetRequest, rsp *userpb.GetResponse) error {
	rsp.User = &userpb.User{Id: req.Id, Name: "Ada Lovelace", Email: "ada@example.com"}
	rsp.Instance = u.instance
	return nil
}

func (u *users) List(context.Context, *userpb.ListRequest, *userpb.ListResponse) error { return nil }

// serveUsers starts n in-process gRPC user instances on loopback, registered
// in reg as services/user registers them.
func serveUsers(tb testing.TB, reg registry.Registry, n int) {
	tb.Helper()
	for i := range n {
		srv := grpcserver.NewServer(
			server.Name("user"),
			server.Id(fmt.Sprintf("bench-%d", i)),
			server.Address("127.0.0.1:0"),
			server.Registry(reg),
			server.Broker(broker.NewMemoryBroker()),
			server.RegisterTTL(time.Minute),
		)
		if err := userpb.RegisterUserServiceHandler(srv, &users{instance: fmt.Sprintf("user-bench-%d", i)}); err != nil {
			tb.Fatal(err)
		}
		if err := srv.Start(); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = srv.Stop() })
	}
}

// clients builds the two clients compared: go-micro's gRPC client with
// go-micro's defaults ("bare", plain.Client), and the client
// every service of this starter calls with ("chain": breaker -> load
// balancing -> retries with attempt timeouts, over the stale-on-error
// registry wrapper), exactly as pkg/service builds it.
func clients(tb testing.TB, reg registry.Registry) map[string]client.Client {
	tb.Helper()
	lookups := discovery.StaleOnError(reg, time.Second, 10*time.Second, func(string, ...any) {})
	chain, err := wrappers.NewClient(lookups, wrappers.DefaultConfig())
	if err != nil {
		tb.Fatal(err)
	}
	return map[string]client.Client{"bare": plain.Client(reg), "chain": chain}
}

// variants is the order in which each benchmark runs the clients: with
// -count=N, bare and chain alternate N times, so that load from elsewhere on
// the machine hits both alike.
var variants = []string{"bare", "chain"}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// latencies collects per-call durations and reports p50/p99 as metrics.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(ds []time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, ds...)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B) {
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	q := func(p float64) float64 { return float64(l.d[int(p*float64(len(l.d)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(q(0.50), "p50-us")
	b.ReportMetric(q(0.99), "p99-us")
}

// BenchmarkCall is one user.Get from a hello-like caller to two user
// instances: sequential calls (latency) and 16 concurrent callers per CPU
// (throughput; ns/op is then the inverse of calls per second).
func BenchmarkCall(b *testing.B) {
	reg := registry.NewMemoryRegistry()
	serveUsers(b, reg, 2)
	cs := clients(b, reg)
	for _, mode := range []string{"serial", "parallel"} {
		for _, v := range variants {
			users := userpb.NewUserService("user", cs[v])
			// Warm the connection pools and the selector cache.
			for range 10 {
				if _, err := users.Get(context.Background(), &userpb.GetRequest{Id: "ada"}); err != nil {
					b.Fatal(err)
				}
			}
			b.Run(mode+"/client="+v, func(b *testing.B) {
				var lat latencies
				b.ReportAllocs()
				cpu0 := cpuTime()
				if mode == "serial" {
					ds := make([]time.Duration, 0, b.N)
					for b.Loop() {
						t := time.Now()
						if _, err := users.Get(context.Background(), &userpb.GetRequest{Id: "ada"}); err != nil {
							b.Fatal(err)
						}
						ds = append(ds, time.Since(t))
					}
					lat.add(ds)
				} else {
					b.SetParallelism(16)
					b.RunParallel(func(pb *testing.PB) {
						var ds []time.Duration
						for pb.Next() {
							t := time.Now()
							if _, err := users.Get(context.Background(), &userpb.GetRequest{Id: "ada"}); err != nil {
								b.Error(err)
								return
							}
							ds = append(ds, time.Since(t))
						}
						lat.add(ds)
					})
				}
				// CPU time of the whole process (client and both servers) per
				// call: less disturbed than wall time by other loads on the
				// machine.
				b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-us/op")
				lat.report(b)
			})
		}
	}
}

// BenchmarkAdded is what the chain adds to one call's latency, measured in
// pairs: each iteration makes one call with each client, alternating which
// goes first, so that drift (GC state, CPU frequency, other loads) hits both
// alike. added-p50-us is the median of the per-pair differences (chain minus
// bare); ns/op is the time of both calls.
func BenchmarkAdded(b *testing.B) {
	reg := registry.NewMemoryRegistry()
	serveUsers(b, reg, 2)
	cs := clients(b, reg)
	bare := userpb.NewUserService("user", cs["bare"])
	chain := userpb.NewUserService("user", cs["chain"])
	get := func(s userpb.UserService) time.Duration {
		t := time.Now()
		if _, err := s.Get(context.Background(), &userpb.GetRequest{Id: "ada"}); err != nil {
			b.Fatal(err)
		}
		return time.Since(t)
	}
	for range 10 {
		get(bare)
		get(chain)
	}
	var bareD, chainD, added []time.Duration
	i := 0
	for b.Loop() {
		var db, dc time.Duration
		if i%2 == 0 {
			db, dc = get(bare), get(chain)
		} else {
			dc, db = get(chain), get(bare)
		}
		i++
		bareD, chainD, added = append(bareD, db), append(chainD, dc), append(added, dc-db)
	}
	p50 := func(ds []time.Duration) float64 {
		slices.Sort(ds)
		return float64(ds[len(ds)/2].Nanoseconds()) / 1e3
	}
	b.ReportMetric(p50(bareD), "bare-p50-us")
	b.ReportMetric(p50(chainD), "chain-p50-us")
	b.ReportMetric(p50(added), "added-p50-us")
}
