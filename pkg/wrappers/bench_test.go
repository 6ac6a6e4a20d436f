package wrappers

import (
	"context"
	"syscall"
	"testing"
	"time"

	grpcclient "github.com/go-micro/plugins/v4/client/grpc"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"
)

// plainClient is go-micro's gRPC client with go-micro's defaults: its
// selector (random per attempt, 1-minute cache), retry policy (timeouts
// only), retries and timeouts; no breaker. The benchmarks' baseline only.
func plainClient(reg registry.Registry) client.Client {
	return grpcclient.NewClient(
		client.Registry(reg),
		client.Selector(selector.NewSelector(selector.Registry(reg))),
		client.Broker(broker.NewMemoryBroker()),
	)
}

// BenchmarkLayers adds the layers of NewClient one at a time, innermost
// first, so that each step's cost shows on its own (docs/performance.md):
//
//	go-micro  plainClient: go-micro's defaults, no wrapper
//	retries   newBase: cached selector, fail-over retries, attempt timeouts, outlier records
//	balance   + LoadBalance (per-call instance order)
//	breaker   + Breaker (hystrix)
//	caller    + CallerChecks (the request encoded once, before the chain): NewClient, as services use it
//
// serial is one caller (latency); parallel is 16 callers per CPU, where
// ns/op is the inverse of calls per second and cpu-us/op the CPU of the
// whole process (client and both servers) per call.
func BenchmarkLayers(b *testing.B) {
	reg := registry.NewMemoryRegistry()
	service := serviceName(b)
	mustServe(b, reg, service, "a")
	mustServe(b, reg, service, "b")
	c := DefaultConfig()
	outliers := NewOutliers(outlierFailures, outlierCooldown)
	base := newBase(reg, c, outliers)
	layers := []struct {
		name   string
		client client.Client
	}{
		{"go-micro", plainClient(reg)},
		{"retries", base},
		{"balance", chain(base, LoadBalance(c.Strategy, outliers))},
		{"breaker", chain(base, Breaker(c.Breaker, c.RequestTimeout), LoadBalance(c.Strategy, outliers))},
		{"caller", mustClient(b, reg, c)},
	}
	for _, mode := range []string{"serial", "parallel"} {
		for _, l := range layers {
			for range 10 { // warm the connection pools and the cache
				if _, err := call(context.Background(), l.client, service); err != nil {
					b.Fatal(err)
				}
			}
			b.Run(mode+"/layers="+l.name, func(b *testing.B) {
				b.ReportAllocs()
				cpu0 := processCPU()
				if mode == "serial" {
					for b.Loop() {
						if _, err := call(context.Background(), l.client, service); err != nil {
							b.Fatal(err)
						}
					}
				} else {
					b.SetParallelism(16)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if _, err := call(context.Background(), l.client, service); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-us/op")
			})
		}
	}
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkBreakerHeld is the heap the breaker still holds after a call
// (held-B/op), and the goroutines it starts per call (goroutines/op).
// Upstream hystrix-go kept each call's run time and total time for 60 s per
// circuit (rolling.Timing, 21-33 B per call) and ran each call on two
// goroutines of its own; the fork in third_party/hystrix-go keeps a bounded
// sample and runs the call on the caller's goroutine. Times an endpoint's
// calls per second, held-B/op is what a process holds for the breaker under
// steady load (docs/performance.md, Memory). The callee answers at once, so
// only the breaker's bookkeeping is measured.
func BenchmarkBreakerHeld(b *testing.B) {
	c := DefaultConfig()
	// Upstream hystrix-go freed a call's slot after the call had returned:
	// at full speed in one goroutine, 1,000 slots could run out.
	c.Breaker.MaxConcurrent = 100_000
	cl := chain(answered{}, Breaker(c.Breaker, c.RequestTimeout))
	req := client.NewRequest(serviceName(b), "Echo.Call", &EchoRequest{Text: "hi"})
	var rsp EchoResponse
	if err := cl.Call(context.Background(), req, &rsp); err != nil { // the circuit and its slots exist before the count
		b.Fatal(err)
	}
	before, created := settledHeap(b), goroutinesCreated()
	for b.Loop() {
		if err := cl.Call(context.Background(), req, &rsp); err != nil {
			b.Fatal(err)
		}
	}
	created = goroutinesCreated() - created
	after := settledHeap(b)
	b.ReportMetric(float64(int64(after)-int64(before))/float64(b.N), "held-B/op")
	b.ReportMetric(float64(created)/float64(b.N), "goroutines/op")
}

// answered is a client whose every call succeeds at once.
type answered struct{ client.Client }

func (answered) Call(context.Context, client.Request, interface{}, ...client.CallOption) error {
	return nil
}
