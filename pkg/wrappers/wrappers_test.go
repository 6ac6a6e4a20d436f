package wrappers

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/pkg/service/rpcserver"
)

// Echo is the test service: it answers with its instance name, or with the
// error its test has set.
type Echo struct {
	instance string
	fail     atomic.Pointer[merrors.Error] // nil: answer normally
	hang     chan struct{}                 // non-nil: block until closed
	calls    atomic.Int64
}

type EchoRequest struct{ Text string }
type EchoResponse struct{ Text, Instance string }

func (e *Echo) Call(ctx context.Context, req *EchoRequest, rsp *EchoResponse) error {
	e.calls.Add(1)
	if e.hang != nil {
		select {
		case <-e.hang:
		case <-ctx.Done(): // the caller gave up; never answer it
			return ctx.Err()
		}
	}
	if err := e.fail.Load(); err != nil {
		// The server writes to the error it sends: one per call.
		return &merrors.Error{Id: err.Id, Code: err.Code, Detail: err.Detail, Status: err.Status}
	}
	rsp.Text, rsp.Instance = req.Text, e.instance
	return nil
}

// mustServe starts an Echo instance of service on loopback, registered in reg.
// opts are added, such as grpcserver.AuthTLS. The server is the one
// services run (rpcserver).
func mustServe(tb testing.TB, reg registry.Registry, service, instance string, opts ...server.Option) *Echo {
	tb.Helper()
	h := &Echo{instance: instance}
	srv := rpcserver.NewServer(append([]server.Option{
		server.Name(service),
		server.Id(instance),
		server.Address("127.0.0.1:0"),
		server.Registry(reg),
		server.Broker(broker.NewMemoryBroker()),
		server.RegisterTTL(time.Minute),
	}, opts...)...)
	if err := srv.Handle(srv.NewHandler(h)); err != nil {
		tb.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = srv.Stop() })
	return h
}

// mustRegisterDead registers an instance of service at an address where
// nothing listens, as a crashed instance stays registered until its TTL.
func mustRegisterDead(tb testing.TB, reg registry.Registry, service string) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	err = reg.Register(&registry.Service{Name: service, Nodes: []*registry.Node{{Id: service + "-dead", Address: addr}}})
	if err != nil {
		tb.Fatal(err)
	}
}

func mustClient(tb testing.TB, reg registry.Registry, c Config) client.Client {
	tb.Helper()
	cl, err := NewClient(reg, c)
	if err != nil {
		tb.Fatal(err)
	}
	return cl
}

func call(ctx context.Context, c client.Client, service string) (EchoResponse, error) {
	var rsp EchoResponse
	req := c.NewRequest(service, "Echo.Call", &EchoRequest{Text: "hi"}, client.WithContentType("application/json"))
	err := c.Call(ctx, req, &rsp)
	return rsp, err
}

// serviceName gives each test run its own service, and so its own
// circuits: hystrix-go keeps circuits per process, across -count runs.
func serviceName(tb testing.TB) string {
	return fmt.Sprintf("%s-%d", strings.NewReplacer("/", ".", " ", "_").Replace(tb.Name()), time.Now().UnixNano())
}

func code(err error) int32 {
	e, ok := Error(err)
	if !ok {
		return 0
	}
	return e.Code
}

// TestFailoverToLiveInstance runs concurrent callers: the retries of each
// call must go to the instances that call has not tried, whatever the other
// calls do (a counter shared by all calls, as in go-micro's roundrobin
// plugin, sends some calls to the dead instance three times).
func TestFailoverToLiveInstance(t *testing.T) {
	for _, strategy := range []string{"roundrobin", "random"} {
		t.Run(strategy, func(t *testing.T) {
			reg := registry.NewMemoryRegistry()
			svc := serviceName(t)
			mustServe(t, reg, svc, "live")
			mustRegisterDead(t, reg, svc)
			cfg := DefaultConfig()
			cfg.Strategy = strategy
			c := mustClient(t, reg, cfg)

			const callers, calls = 8, 50
			errs := make(chan error, callers*calls)
			var wg sync.WaitGroup
			for range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range calls {
						rsp, err := call(context.Background(), c, svc)
						if err == nil && rsp.Instance != "live" {
							err = fmt.Errorf("answered by %q", rsp.Instance)
						}
						errs <- err
					}
				}()
			}
			wg.Wait()
			close(errs)
			failed := 0
			for err := range errs {
				if err != nil {
					failed++
					t.Log(err)
				}
			}
			if failed > 0 {
				t.Fatalf("%d of %d calls failed", failed, callers*calls)
			}
		})
	}
}

func TestRoundRobinUsesEveryInstance(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	svc := serviceName(t)
	mustServe(t, reg, svc, "a")
	mustServe(t, reg, svc, "b")
	c := mustClient(t, reg, DefaultConfig())

	seen := map[string]int{}
	for range 10 {
		rsp, err := call(context.Background(), c, svc)
		if err != nil {
			t.Fatal(err)
		}
		seen[rsp.Instance]++
	}
	if seen["a"] != 5 || seen["b"] != 5 {
		t.Fatalf("10 calls over two instances: %v, want 5 each", seen)
	}
}

func TestHungInstanceCostsOneAttempt(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	svc := serviceName(t)
	hung := mustServe(t, reg, svc, "hung")
	hung.hang = make(chan struct{})
	t.Cleanup(func() { close(hung.hang) })
	mustServe(t, reg, svc, "live")
	cfg := DefaultConfig()
	cfg.AttemptTimeout = 100 * time.Millisecond
	c := mustClient(t, reg, cfg)

	for i := range 6 {
		rsp, err := call(context.Background(), c, svc)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if rsp.Instance != "live" {
			t.Fatalf("call %d answered by %q", i, rsp.Instance)
		}
	}
	if hung.calls.Load() == 0 {
		t.Fatal("the hung instance was never tried: the test proves nothing")
	}
}

// An attempt on a hung instance ends at the attempt timeout, which gRPC
// applies as the connection's method config, as a timeout of the client's
// own (retried elsewhere); after Init with another attempt timeout, at the
// new one: the connections made with the old are replaced.
func TestHungAttemptEndsAtAttemptTimeout(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	svc := serviceName(t)
	hung := mustServe(t, reg, svc, "hung")
	hung.hang = make(chan struct{})
	t.Cleanup(func() { close(hung.hang) })
	cfg := DefaultConfig()
	cfg.Retries = 0
	cfg.AttemptTimeout = 100 * time.Millisecond
	c := mustClient(t, reg, cfg)
	for _, timeout := range []time.Duration{100 * time.Millisecond, 400 * time.Millisecond} {
		if err := c.Init(withAttemptTimeout(timeout)); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err := call(context.Background(), c, svc)
		took := time.Since(start)
		e, ok := Error(err)
		if !ok || e.Id != clientID || e.Code != 408 || e.Detail != context.DeadlineExceeded.Error() {
			t.Fatalf("attempt timeout %v: %v, want the client's 408 %q", timeout, err, context.DeadlineExceeded)
		}
		if f := Classify(context.Background(), err); f != NetworkFault {
			t.Errorf("attempt timeout %v: %v is a %v fault, want a network fault (retried)", timeout, err, f)
		}
		if took < timeout || took > timeout+time.Second {
			t.Errorf("attempt timeout %v: the call took %v", timeout, took)
		}
	}
}

// TestNoStallOnPooledConnections is why the client uses gRPC: with
// go-micro's HTTP transport one of the first few hundred sequential calls on
// a pooled connection got no answer for 5 s.
func TestNoStallOnPooledConnections(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	svc := serviceName(t)
	mustServe(t, reg, svc, "a")
	cfg := DefaultConfig()
	cfg.Retries = 0 // a retry would hide a stalled attempt
	c := mustClient(t, reg, cfg)

	for i := range 500 {
		if _, err := call(context.Background(), c, svc); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}

func TestNoInstanceIs503(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	c := mustClient(t, reg, DefaultConfig())
	_, err := call(context.Background(), c, serviceName(t))
	if got := code(err); got != 503 {
		t.Fatalf("call to a service with no instance: %v (code %d), want 503", err, got)
	}
}

func TestBreakerIgnoresClientErrors(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	svc := serviceName(t)
	echo := mustServe(t, reg, svc, "a")
	echo.fail.Store(merrors.NotFound(svc, "no such thing").(*merrors.Error))
	c := mustClient(t, reg, DefaultConfig())

	n := 5 * DefaultBreakerConfig().VolumeThreshold
	for i := range n {
		_, err := call(context.Background(), c, svc)
		if got := code(err); got != 404 {
			t.Fatalf("call %d: %v, want the service's 404 (an open circuit says 503)", i, err)
		}
	}
	if got := echo.calls.Load(); got != int64(n) {
		t.Fatalf("service saw %d calls, want %d", got, n)
	}
}

func TestBreakerOpensOnServerErrorsAndCloses(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	svc := serviceName(t)
	echo := mustServe(t, reg, svc, "a")
	echo.fail.Store(merrors.InternalServerError(svc, "broken").(*merrors.Error))
	cfg := DefaultConfig()
	cfg.Breaker.SleepWindow = 300 * time.Millisecond
	c := mustClient(t, reg, cfg)

	// Fail until the circuit opens; it must within the volume threshold
	// plus a few calls for hystrix-go's health snapshot to catch up.
	limit := cfg.Breaker.VolumeThreshold + 10
	var opening time.Time // the start of the call that found the circuit open
	for i := 0; i < limit && opening.IsZero(); i++ {
		start := time.Now()
		_, err := call(context.Background(), c, svc)
		switch code(err) {
		case 500:
		case 503:
			opening = start
		default:
			t.Fatalf("call %d: %v, want 500 or 503", i, err)
		}
	}
	if opening.IsZero() {
		t.Fatalf("circuit still closed after %d server errors", limit)
	}
	// While open, calls fail without reaching the service, but for one test
	// call per sleep window (which fails, so the circuit stays open).
	before := echo.calls.Load()
	const tries = 20
	for i := range tries {
		if _, err := call(context.Background(), c, svc); code(err) != 503 && code(err) != 500 {
			t.Fatalf("call %d to an open circuit: %v, want 503 (or 500 from a test call)", i, err)
		}
	}
	windows := int64(time.Since(opening)/cfg.Breaker.SleepWindow) + 1
	if got := echo.calls.Load() - before; got > windows {
		t.Fatalf("open circuit let %d of %d calls through, want at most %d (one per sleep window)", got, tries, windows)
	}

	// Closed again: hystrix-go closes the circuit after a test call
	// succeeds, a moment after that call has returned; then calls pass.
	echo.fail.Store(nil)
	poll.Eventually(t, 5*time.Second, func() error {
		for range 20 {
			if _, err := call(context.Background(), c, svc); err != nil {
				return err
			}
		}
		return nil
	})
}

func TestRetryTransportErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		retry bool
	}{
		{"refused connection", merrors.InternalServerError("go.micro.client", "connection error: refused"), true},
		{"attempt timeout", merrors.Timeout("go.micro.client", "context deadline exceeded"), true},
		{"failed dial", merrors.InternalServerError("go.micro.client", "Error sending request: context deadline exceeded"), true},
		{"closed connection", merrors.New("go.micro.client", "connection error: connection refused", 503), true},
		{"service unavailable", merrors.New("hello.Greet", "user.Get: no instance", 503), false},
		{"service error", merrors.InternalServerError("user.Get", "boom"), false},
		{"service error as text", stringError(merrors.InternalServerError("user.Get", "boom").Error()), false},
		{"not found", merrors.NotFound("user.Get", "nobody"), false},
		{"plain error", context.Canceled, false},
		{"request the caller could not encode", ByCaller(merrors.InternalServerError("go.micro.client", "encoding the request: invalid UTF-8")), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			retry, err := RetryTransportErrors(context.Background(), nil, 0, tc.err)
			if err != nil || retry != tc.retry {
				t.Fatalf("RetryTransportErrors(%v) = %v, %v; want %v", tc.err, retry, err, tc.retry)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		ok     bool
	}{
		{"default", func(*Config) {}, true},
		{"random", func(c *Config) { c.Strategy = "random" }, true},
		{"unknown strategy", func(c *Config) { c.Strategy = "fastest" }, false},
		{"negative retries", func(c *Config) { c.Retries = -1 }, false},
		{"attempt longer than request", func(c *Config) { c.AttemptTimeout = 2 * c.RequestTimeout }, false},
		{"zero timeout", func(c *Config) { c.RequestTimeout = 0 }, false},
		{"error percent over 100", func(c *Config) { c.Breaker.ErrorPercent = 101 }, false},
		{"no concurrency", func(c *Config) { c.Breaker.MaxConcurrent = 0 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.change(&c)
			if err := c.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// stringError is an error that is only text, as a service's error arrives.
type stringError string

func (s stringError) Error() string { return string(s) }
