package wrappers

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	grpcserver "github.com/go-micro/plugins/v4/server/grpc"
	"testing"

	"go-micro.dev/v4/registry"

	"github.com/example/micro-starter/internal/poll"
)

// The base client's own cost per call, whole process (client and server):
// go-micro's gRPC client plugin took 304 allocations per call here (and 297
// with its own defaults); ours must stay well below, or the work it does
// once per connection or client is back in every call.
func TestCallAllocations(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	service := serviceName(t)
	mustServe(t, reg, service, "a")
	c := newBase(reg, DefaultConfig(), NewOutliers(outlierFailures, outlierCooldown))
	for range 20 { // connect and fill the caches
		if _, err := call(context.Background(), c, service); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(500, func() {
		if _, err := call(context.Background(), c, service); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.0f allocations per call", allocs)
	if allocs > maxAllocsPerCall {
		t.Errorf("%.0f allocations per call, want at most %d", allocs, maxAllocsPerCall)
	}
}

const maxAllocsPerCall = 260

// One connection per instance carries every call to it, however many are
// in flight: with go-micro's plugin, 64 calls in flight here took 64
// connections, each with its own buffers and goroutines on both sides.
func TestOneConnectionPerInstance(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	service := serviceName(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingListener{Listener: ln}
	echo := mustServe(t, reg, service, "a", grpcserver.Listener(counted))
	echo.hang = make(chan struct{})
	c := newBase(reg, DefaultConfig(), NewOutliers(outlierFailures, outlierCooldown))

	const inFlight = 64
	var wg sync.WaitGroup
	errs := make(chan error, inFlight)
	for range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := call(context.Background(), c, service); err != nil {
				errs <- err
			}
		}()
	}
	err = poll.Until(5*time.Second, 5*time.Millisecond, func() error {
		if n := echo.calls.Load(); n < inFlight {
			return fmt.Errorf("%d calls in flight", n)
		}
		return nil
	})
	close(echo.hang)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err != nil {
		t.Fatalf("%d of %d calls in flight at once: %v", echo.calls.Load(), inFlight, err)
	}
	if n := counted.accepted.Load(); n != 1 {
		t.Errorf("%d calls in flight at once took %d connections, want 1", inFlight, n)
	}
}

type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// What the breaker adds to a call of hystrix-go's own work allocates
// nothing once the circuit is known: its name is not built per call, and a
// call that succeeded is not compared with hystrix-go's error values (each
// comparison boxed one).
func TestBreakerBookkeepingAllocatesNothing(t *testing.T) {
	b := Breaker(DefaultBreakerConfig(), time.Second)(nil).(*breaker)
	name := b.circuit("svc", "Echo.Call")
	if name != "svc.Echo.Call" {
		t.Fatalf("circuit %q, want svc.Echo.Call", name)
	}
	if allocs := testing.AllocsPerRun(100, func() {
		_ = breakerError(b.circuit("svc", "Echo.Call"), nil)
	}); allocs != 0 {
		t.Errorf("%.0f allocations per call, want 0", allocs)
	}
}
