package service

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/pkg/discovery"
	"github.com/example/micro-starter/pkg/wrappers"
)

func TestParseFlagsAndEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		env   map[string]string
		check func(Config) bool
	}{
		{"defaults", nil, nil, func(c Config) bool {
			return c.Registry.Name == "mdns" && c.RegisterTTL == 10*time.Second && c.RegisterInterval == 5*time.Second && c.Client.Retries == 2
		}},
		{"flags", []string{"--registry", "etcd", "--registry_address", "127.0.0.1:1,127.0.0.1:2", "--register_ttl", "20s"}, nil, func(c Config) bool {
			return c.Registry.Name == "etcd" && len(c.Registry.Addresses) == 2 && c.RegisterTTL == 20*time.Second
		}},
		{"environment", nil, map[string]string{"MICRO_REGISTRY": "consul", "MICRO_REGISTRY_ADDRESS": "127.0.0.1:8500", "MICRO_CLIENT_RETRIES": "4"}, func(c Config) bool {
			return c.Registry.Name == "consul" && c.Registry.Addresses[0] == "127.0.0.1:8500" && c.Client.Retries == 4
		}},
		{"flag beats environment", []string{"--registry", "etcd"}, map[string]string{"MICRO_REGISTRY": "consul"}, func(c Config) bool {
			return c.Registry.Name == "etcd"
		}},
		{"go-micro's bare seconds", nil, map[string]string{"MICRO_REGISTER_TTL": "30", "MICRO_REGISTER_INTERVAL": "15"}, func(c Config) bool {
			return c.RegisterTTL == 30*time.Second && c.RegisterInterval == 15*time.Second
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parse(tc.args, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Fatalf("parsed %+v", c)
			}
		})
	}
}

func TestBadSettingsAreUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"unknown registry", []string{"--registry", "zk"}, nil},
		{"unknown registry from environment", nil, map[string]string{"MICRO_REGISTRY": "zk"}},
		{"empty address entry", []string{"--registry_address", "a:1,,b:2"}, nil},
		{"bad duration", []string{"--register_ttl", "soon"}, nil},
		{"bad number from environment", nil, map[string]string{"MICRO_CLIENT_RETRIES": "many"}},
		{"TTL not above interval", []string{"--register_ttl", "5s", "--register_interval", "5s"}, nil},
		{"unknown flag", []string{"--nope"}, nil},
		{"stray argument", []string{"user"}, nil},
		{"unknown selector", []string{"--selector", "fastest"}, nil},
		{"server address without a port", []string{"--server_address", "nonsense"}, nil},
		{"server address with a named port", nil, map[string]string{"MICRO_SERVER_ADDRESS": ":http"}},
		{"server address port out of range", []string{"--server_address", "127.0.0.1:65536"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parse(tc.args, tc.env)
			if err == nil {
				_, err = New(c, discardLogger())
			}
			if err == nil || ExitCode(err) != 2 {
				t.Fatalf("got %v (exit code %d), want a usage error", err, ExitCode(err))
			}
		})
	}
}

// TestEffectiveOptions checks the values the server and client really run
// with: go-micro's service.Init would have reset them to 60 s / 30 s and 5
// retries, which is why New builds them itself.
func TestEffectiveOptions(t *testing.T) {
	c, err := parse([]string{"--registry", "memory", "--register_ttl", "12s", "--register_interval", "4s", "--client_retries", "3", "--client_request_timeout", "7s"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc := mustNew(t, c)
	so := svc.Server().Options()
	if so.RegisterTTL != 12*time.Second || so.RegisterInterval != 4*time.Second || so.Name != "test" {
		t.Errorf("server options: ttl %v, interval %v, name %q", so.RegisterTTL, so.RegisterInterval, so.Name)
	}
	co := svc.Client().Options().CallOptions
	if co.Retries != 3 || co.RequestTimeout != 7*time.Second {
		t.Errorf("client options: retries %d, request timeout %v", co.Retries, co.RequestTimeout)
	}
}

func TestShutdownDeregistersThenKeepsServing(t *testing.T) {
	c := testConfig()
	c.Drain = 3 * time.Second // long enough to call in; Run waits it out
	svc := mustNew(t, c)
	mustHandle(t, svc, &Echo{})
	r := start(t, svc)
	addr := mustRegistered(t, svc)

	r.cancel()
	poll.Eventually(t, 2*time.Second, func() error { return registered(svc, 0) })
	// A caller whose cached node list still names this instance.
	if err := callEcho(svc, client.WithAddress(addr)); err != nil {
		t.Fatalf("call during drain: %v", err)
	}
	r.mustReturn(t, 10*time.Second)
}

func TestShutdownWaitsForCallsInFlight(t *testing.T) {
	svc := mustNew(t, testConfig())
	h := &Echo{hold: make(chan struct{})}
	mustHandle(t, svc, h)
	r := start(t, svc)
	mustRegistered(t, svc)

	result := make(chan error, 1)
	go func() { result <- callEcho(svc) }()
	poll.Eventually(t, 2*time.Second, func() error {
		if h.started.Load() == 0 {
			return errors.New("call not started")
		}
		return nil
	})
	r.cancel()
	poll.Eventually(t, 2*time.Second, func() error { return registered(svc, 0) })
	close(h.hold)
	if err := <-result; err != nil {
		t.Fatalf("call in flight during shutdown: %v", err)
	}
	r.mustReturn(t, 10*time.Second)
}

func TestShutdownDoesNotHangOnRegistry(t *testing.T) {
	c := testConfig()
	c.ShutdownTimeout = 200 * time.Millisecond
	stuck := make(chan struct{})
	t.Cleanup(func() { close(stuck) })
	reg := hangingRegistry{Registry: registry.NewMemoryRegistry(), release: stuck}
	svc := mustNew(t, c, server.Registry(reg))
	mustHandle(t, svc, &Echo{})
	r := start(t, svc)
	poll.Eventually(t, 2*time.Second, func() error { return registeredIn(reg, 1) })

	r.cancel()
	r.mustReturn(t, 10*time.Second)
}

func TestRunFailsWhenRegistryUnreachable(t *testing.T) {
	c := testConfig()
	c.Registry = discovery.Config{Name: "etcd", Addresses: []string{closedAddress(t)}, Timeout: 200 * time.Millisecond}
	c.RegistryAttempts = 2
	svc := mustNew(t, c)
	errc := make(chan error, 1)
	go func() { errc <- svc.Run(context.Background()) }()
	select {
	case err := <-errc:
		if !errors.Is(err, discovery.ErrUnreachable) {
			t.Fatalf("Run: %v, want ErrUnreachable", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run still waiting on an unreachable registry")
	}
}

// TestRunBindsBeforeTheRegistry: a port in use is an error (exit status 1)
// before the registry is asked anything, so nothing is registered for an
// instance that cannot serve.
func TestRunBindsBeforeTheRegistry(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	c := testConfig()
	c.Registry.Name = "etcd" // a registry server, which Run checks before serving
	c.ServerAddress = taken.Addr().String()
	reg := &countingRegistry{Registry: registry.NewMemoryRegistry()}
	svc := mustNewOn(t, c, reg)

	err = svc.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "address already in use") || ExitCode(err) != 1 {
		t.Fatalf("Run on a port in use: %v (exit code %d), want address already in use, exit code 1", err, ExitCode(err))
	}
	if n := reg.calls.Load(); n != 0 {
		t.Errorf("the registry was called %d times before the port was found taken, want 0", n)
	}
}

// countingRegistry counts the calls that reach it.
type countingRegistry struct {
	registry.Registry
	calls atomic.Int64
}

func (r *countingRegistry) Register(s *registry.Service, opts ...registry.RegisterOption) error {
	r.calls.Add(1)
	return r.Registry.Register(s, opts...)
}

func (r *countingRegistry) ListServices(opts ...registry.ListOption) ([]*registry.Service, error) {
	r.calls.Add(1)
	return r.Registry.ListServices(opts...)
}

func (r *countingRegistry) GetService(name string, opts ...registry.GetOption) ([]*registry.Service, error) {
	r.calls.Add(1)
	return r.Registry.GetService(name, opts...)
}

// TestHandlerErrorsKeepServiceID shows why ownErrors exists: a plain error
// from a handler must reach the caller as the service's error, which the
// client does not retry.
func TestHandlerErrorsKeepServiceID(t *testing.T) {
	svc := mustNew(t, testConfig())
	h := &Echo{fail: errors.New("disk on fire")}
	mustHandle(t, svc, h)
	start(t, svc)
	mustRegistered(t, svc)

	err := callEcho(svc)
	e, ok := wrappers.Error(err)
	if !ok || e.Id != "test" || e.Code != 500 {
		t.Fatalf("got %v, want a 500 with id %q", err, "test")
	}
	if n := h.started.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1 (no retry)", n)
	}
}

// Echo is the test handler.
type Echo struct {
	hold    chan struct{} // non-nil: block until closed
	fail    error
	started atomic.Int64
}

type EchoRequest struct{ Text string }
type EchoResponse struct{ Text string }

func (e *Echo) Call(_ context.Context, req *EchoRequest, rsp *EchoResponse) error {
	e.started.Add(1)
	if e.hold != nil {
		<-e.hold
	}
	rsp.Text = req.Text
	return e.fail
}

func callEcho(svc *Service, opts ...client.CallOption) error {
	c := svc.Client()
	req := c.NewRequest("test", "Echo.Call", &EchoRequest{Text: "hi"}, client.WithContentType("application/json"))
	return c.Call(context.Background(), req, &EchoResponse{}, opts...)
}

func testConfig() Config {
	c := DefaultConfig("test")
	c.Registry.Name = "memory"
	c.ServerAddress = "127.0.0.1:0"
	c.Drain = 100 * time.Millisecond
	return c
}

func parse(args []string, env map[string]string) (Config, error) {
	c := DefaultConfig("test")
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.Flags(fs)
	err := parseFlags(fs, args, func(k string) string { return env[k] }, nil)
	if err == nil {
		err = c.Validate()
		if err != nil {
			err = &UsageError{err}
		}
	}
	return c, err
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func mustNew(tb testing.TB, c Config, opts ...server.Option) *Service {
	tb.Helper()
	svc, err := New(c, discardLogger(), opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return svc
}

func mustHandle(tb testing.TB, svc *Service, h any) {
	tb.Helper()
	if err := svc.Server().Handle(svc.Server().NewHandler(h)); err != nil {
		tb.Fatal(err)
	}
}

// run is a Service running in the background until cancel is called or the
// test ends.
type run struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error         // Run's result, once done is closed
}

func start(tb testing.TB, svc *Service) *run {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = svc.Run(ctx)
		close(r.done)
	}()
	tb.Cleanup(func() {
		r.cancel()
		select {
		case <-r.done:
		case <-time.After(15 * time.Second):
			tb.Error("Run did not return after cancel")
		}
	})
	return r
}

// mustReturn waits for Run to return nil.
func (r *run) mustReturn(tb testing.TB, within time.Duration) {
	tb.Helper()
	select {
	case <-r.done:
		if r.err != nil {
			tb.Fatalf("Run: %v", r.err)
		}
	case <-time.After(within):
		tb.Fatalf("Run did not return within %v of shutdown", within)
	}
}

// mustRegistered waits for svc's one node and returns its address.
func mustRegistered(tb testing.TB, svc *Service) string {
	tb.Helper()
	poll.Eventually(tb, 5*time.Second, func() error { return registered(svc, 1) })
	svcs, _ := svc.Registry().GetService("test")
	return svcs[0].Nodes[0].Address
}

func registered(svc *Service, want int) error { return registeredIn(svc.Registry(), want) }

func registeredIn(reg registry.Registry, want int) error {
	svcs, err := reg.GetService("test")
	if err != nil && !errors.Is(err, registry.ErrNotFound) {
		return err
	}
	n := 0
	for _, s := range svcs {
		n += len(s.Nodes)
	}
	if n != want {
		return errors.New("wrong number of nodes registered")
	}
	return nil
}

// hangingRegistry never returns from Deregister, like a registry that went
// silent, until release is closed.
type hangingRegistry struct {
	registry.Registry
	release chan struct{}
}

func (h hangingRegistry) Deregister(*registry.Service, ...registry.DeregisterOption) error {
	<-h.release
	return nil
}

func closedAddress(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
