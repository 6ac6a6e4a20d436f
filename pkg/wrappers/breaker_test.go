package wrappers

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/example/micro-starter/internal/poll"
	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
)

// goroutinesCreated is the number of goroutines this process has started.
func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// liveHeap is the heap still reachable after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// settledHeap waits until the heap has not grown between two readings one
// poll apart. The fork counts each call before it returns; upstream
// hystrix-go counted it from a goroutine of its own, up to 2,000 calls
// behind, so that without the wait its figures came out low.
func settledHeap(tb testing.TB) uint64 {
	tb.Helper()
	var last uint64
	poll.Eventually(tb, 10*time.Second, func() error {
		h := liveHeap()
		if last == 0 || h > last {
			last = h
			return fmt.Errorf("heap still growing: %d B", h)
		}
		return nil
	})
	return last
}

// stackClient records the stack of the goroutine its Call runs on.
type stackClient struct {
	client.Client
	stack *string
}

func (s stackClient) Call(context.Context, client.Request, interface{}, ...client.CallOption) error {
	buf := make([]byte, 64<<10)
	*s.stack = string(buf[:runtime.Stack(buf, false)])
	return nil
}

// The breaker runs the call on the caller's goroutine and starts none:
// upstream hystrix-go started two per call (the command and its timeout
// watcher), whose fresh stacks grew while they ran the whole client chain.
func TestBreakerStartsNoGoroutine(t *testing.T) {
	var stack string
	cl := chain(stackClient{stack: &stack}, Breaker(DefaultBreakerConfig(), time.Second))
	req := client.NewRequest(serviceName(t), "Echo.Call", &EchoRequest{Text: "hi"})
	var rsp EchoResponse
	if err := cl.Call(context.Background(), req, &rsp); err != nil { // creates the circuit and its monitors
		t.Fatal(err)
	}
	if !strings.Contains(stack, "wrappers.TestBreakerStartsNoGoroutine") {
		t.Fatalf("the callee ran on another goroutine than the caller's:\n%s", stack)
	}

	cl = chain(answered{}, Breaker(DefaultBreakerConfig(), time.Second))
	if err := cl.Call(context.Background(), req, &rsp); err != nil {
		t.Fatal(err)
	}
	const calls = 1000
	before := goroutinesCreated()
	for range calls {
		if err := cl.Call(context.Background(), req, &rsp); err != nil {
			t.Fatal(err)
		}
	}
	// A little room for goroutines of the runtime or of earlier tests.
	if created := goroutinesCreated() - before; created > 10 {
		t.Fatalf("%d goroutines started for %d calls, want none", created, calls)
	}
}

// What the breaker holds does not grow with the calls: upstream hystrix-go
// kept each call's two durations for 60 s (21-33 B per call, 5-6 MiB per
// process at 3,000 calls/s). The fork keeps at most 100 samples per second
// per latency window, about 100 KB per circuit at any rate; 50,000 calls
// in a second or two hold a few KB.
func TestBreakerHoldsBoundedMemory(t *testing.T) {
	cl := chain(answered{}, Breaker(DefaultBreakerConfig(), time.Second))
	req := client.NewRequest(serviceName(t), "Echo.Call", &EchoRequest{Text: "hi"})
	var rsp EchoResponse
	if err := cl.Call(context.Background(), req, &rsp); err != nil { // the circuit exists before the count
		t.Fatal(err)
	}
	before := settledHeap(t)
	const calls = 50_000
	for range calls {
		if err := cl.Call(context.Background(), req, &rsp); err != nil {
			t.Fatal(err)
		}
	}
	held := int64(settledHeap(t)) - int64(before)
	const limit = 128 << 10
	if held > limit {
		t.Fatalf("%d calls hold %d B (%.1f B per call), want at most %d B", calls, held, float64(held)/calls, limit)
	}
}

// As many callers as MaxConcurrent, each calling again as soon as its call
// returned, are never rejected: upstream hystrix-go returned the call
// before it returned the call's slot, so that such a caller found the slots
// taken now and then (docs: go-micro-v4-traps, hystrix).
func TestBreakerFullConcurrencyNeverRejects(t *testing.T) {
	cfg := DefaultBreakerConfig()
	cfg.MaxConcurrent = 4
	cl := chain(answered{}, Breaker(cfg, time.Second))
	req := client.NewRequest(serviceName(t), "Echo.Call", &EchoRequest{Text: "hi"})
	var rejected atomic.Int64
	var wg sync.WaitGroup
	for range cfg.MaxConcurrent {
		wg.Go(func() {
			var rsp EchoResponse
			for range 5000 {
				if err := cl.Call(context.Background(), req, &rsp); err != nil {
					if code(err) != 503 {
						t.Error(err)
						return
					}
					rejected.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := rejected.Load(); n > 0 {
		t.Fatalf("%d of %d calls rejected with only %d callers", n, 5000*cfg.MaxConcurrent, cfg.MaxConcurrent)
	}
}

// heldClient holds each call until released or until its context ends.
type heldClient struct {
	client.Client
	entered chan struct{}
	release chan struct{}
}

func (h heldClient) Call(ctx context.Context, _ client.Request, _ interface{}, _ ...client.CallOption) error {
	h.entered <- struct{}{}
	select {
	case <-h.release:
		return nil
	case <-ctx.Done():
		return merrors.Timeout("go.micro.client", "%v", ctx.Err())
	}
}

// A call over MaxConcurrent in flight is rejected at once with a 503, as
// upstream, and the slots are free again once the calls have returned.
func TestBreakerRejectsOverMaxConcurrent(t *testing.T) {
	cfg := DefaultBreakerConfig()
	cfg.MaxConcurrent = 2
	held := heldClient{entered: make(chan struct{}, cfg.MaxConcurrent+1), release: make(chan struct{})}
	cl := chain(held, Breaker(cfg, time.Second))
	req := client.NewRequest(serviceName(t), "Echo.Call", &EchoRequest{Text: "hi"})
	errs := make(chan error, cfg.MaxConcurrent)
	for range cfg.MaxConcurrent {
		go func() {
			var rsp EchoResponse
			errs <- cl.Call(context.Background(), req, &rsp)
		}()
		<-held.entered
	}
	var rsp EchoResponse
	err := cl.Call(context.Background(), req, &rsp)
	if code(err) != 503 || !strings.Contains(err.Error(), "too many calls in flight") {
		t.Fatalf("call over the limit: %v, want 503 too many calls in flight", err)
	}
	close(held.release)
	for range cfg.MaxConcurrent {
		if err := <-errs; err != nil {
			t.Fatalf("held call: %v", err)
		}
	}
	if err := cl.Call(context.Background(), req, &rsp); err != nil {
		t.Fatalf("call after the held ones returned: %v", err)
	}
}

// A call whose context ends in the callee ends with the context's error, as
// upstream's timeout watcher made it (and the circuit counts it as the
// caller's, not as a failure).
func TestBreakerContextDeadlineEndsCall(t *testing.T) {
	held := heldClient{entered: make(chan struct{}, 1), release: make(chan struct{})}
	cl := chain(held, Breaker(DefaultBreakerConfig(), time.Second))
	req := client.NewRequest(serviceName(t), "Echo.Call", &EchoRequest{Text: "hi"})
	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		var rsp EchoResponse
		start := time.Now()
		err := cl.Call(ctx, req, &rsp)
		cancel()
		<-held.entered
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call %d: %v, want context deadline exceeded", i, err)
		}
		if d := time.Since(start); d > 900*time.Millisecond {
			t.Fatalf("call %d took %v, past the breaker's own timeout", i, d)
		}
	}
}
