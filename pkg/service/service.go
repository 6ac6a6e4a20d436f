// Package service runs one instance of a go-micro service: it registers the
// instance, keeps it registered, and on shutdown deregisters it, drains, and
// waits for calls in flight, without ever hanging on the registry.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	grpcserver "github.com/go-micro/plugins/v4/server/grpc"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"

	"github.com/example/micro-starter/pkg/discovery"
	"github.com/example/micro-starter/pkg/metrics"
	"github.com/example/micro-starter/pkg/mtls"
	"github.com/example/micro-starter/pkg/service/rpcserver"
	"github.com/example/micro-starter/pkg/tracing"
	"github.com/example/micro-starter/pkg/wrappers"
)

// Service is one instance: a go-micro server to register handlers on, and
// the wrapped client to call other services with.
type Service struct {
	cfg      Config
	log      *slog.Logger
	registry registry.Registry
	server   server.Server
	client   client.Client
	draining atomic.Bool
	reg      *drainingRegistry // what the server registers through

	inFlight   inFlight      // handlers running, for Healthy
	stuckAfter time.Duration // see Healthy
	health     *http.Server  // GET /health, from Run

	metrics    *metrics.Metrics // see metrics.go
	metricsMux *http.ServeMux
	tracing    *tracing.Tracing
	outliers   *wrappers.Outliers // the client's, for the gateway's status page
}

// New builds the instance without contacting the registry; Run does that.
// Options are built here rather than by go-micro's service.Init, which
// re-reads os.Args and resets RegisterTTL, RegisterInterval and client
// retries to its own defaults, and exits the process on a bad flag.
func New(cfg Config, log *slog.Logger, opts ...server.Option) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, &UsageError{err}
	}
	reg, err := discovery.New(cfg.Registry, registry.Logger(newMicroLogger(log.With("service", cfg.Name))))
	if err != nil {
		return nil, &UsageError{err}
	}
	return newService(cfg, log, reg, opts...)
}

// registryCallTimeout bounds each registration and deregistration while the
// instance runs. They take milliseconds when the registry is up; when it is
// not, a bound this short keeps re-registration going and stopping quick.
const registryCallTimeout = time.Second

// lookupTimeout bounds each lookup the client makes in the registry.
const lookupTimeout = time.Second

// newService builds the instance on reg.
func newService(cfg Config, log *slog.Logger, reg registry.Registry, opts ...server.Option) (*Service, error) {
	log = log.With("service", cfg.Name)
	ml := newMicroLogger(log)
	tlsOpts, err := useTLS(&cfg, log)
	if err != nil {
		return nil, err
	}
	// No caller waits for an answer longer than its request timeout (the
	// same setting in every service here): a handler still running at
	// twice that answers nobody.
	s := &Service{cfg: cfg, log: log, registry: reg, stuckAfter: 2 * cfg.Client.RequestTimeout}
	s.metrics, s.metricsMux = metrics.New(), http.NewServeMux()
	lookups := discovery.StaleOnError(reg, lookupTimeout, cfg.RegisterTTL, func(format string, args ...any) {
		s.metrics.StaleLookup() // it logs each lookup it answers from its cache
		log.Warn(fmt.Sprintf(format, args...))
	})
	if s.tracing, err = tracing.New(cfg.Tracing, cfg.Name); err != nil {
		return nil, err
	}
	s.outliers = wrappers.DefaultOutliers()
	s.metrics.WatchOutliers(s.outliers)
	// --metrics_address off: none of the metrics wrappers, so that their
	// cost can be avoided, and measured (bench/load).
	counted := cfg.MetricsAddress != MetricsOff
	clientOpts := []client.Option{client.WithLogger(ml)}
	if counted {
		clientOpts = append(clientOpts, client.WrapCall(s.metrics.CallWrapper()))
	}
	cl, err := wrappers.NewObservedClient(lookups, cfg.Client, s.outliers, append(clientOpts, client.WrapCall(s.tracing.CallWrapper()))...)
	if err != nil {
		return nil, &UsageError{err}
	}
	s.client = s.tracing.ClientWrapper()(cl)
	s.reg = &drainingRegistry{Registry: reg, timeout: min(registryCallTimeout, cfg.ShutdownTimeout)}
	// First of the handler wrappers: its span covers the others.
	wrapped := []server.Option{server.WrapHandler(s.tracing.HandlerWrapper())}
	var registered registry.Registry = s.reg
	if counted {
		s.client = s.metrics.ClientWrapper()(s.client)                            // outermost: it counts what callers get
		wrapped = append(wrapped, server.WrapHandler(s.metrics.HandlerWrapper())) // outside ownErrors: it counts the code answered
		registered = s.metrics.Registrations(s.reg)
	}
	// go-micro's gRPC server, its calls dispatched by rpcserver.
	s.server = rpcserver.NewServer(append(append(wrapped,
		server.Name(cfg.Name),
		server.WithLogger(ml),
		server.Address(cfg.ServerAddress),
		server.Broker(broker.NewMemoryBroker()), // no pub/sub here: open no port for it
		server.WrapHandler(ownErrors(cfg.Name)),
		server.WrapHandler(s.inFlight.wrap),
		server.Registry(registered),
		server.RegisterTTL(cfg.RegisterTTL),
		server.RegisterInterval(cfg.RegisterInterval),
		// Stop waits for handlers in flight. Only honoured here, in NewServer.
		server.Wait(nil),
	), append(tlsOpts, opts...)...)...)
	if err := s.server.Handle(s.server.NewHandler(&Health{service: cfg.Name, healthy: s.Healthy})); err != nil {
		return nil, fmt.Errorf("health handler: %w", err)
	}
	return s, nil
}

// Outliers is the client's outlier record: which callee instances it
// holds ejected now, and until when (Outliers.EjectedNow).
func (s *Service) Outliers() *wrappers.Outliers { return s.outliers }

// Server is the RPC server to register handlers on before Run.
func (s *Service) Server() server.Server { return s.server }

// Client calls other services by name through the wrapper chain.
func (s *Service) Client() client.Client { return s.client }

// Tracing is the instance's tracer, for spans of its own (the gateway's
// HTTP requests).
func (s *Service) Tracing() *tracing.Tracing { return s.tracing }

// Registry is the registry this instance registers in.
func (s *Service) Registry() registry.Registry { return s.registry }

// Instance names this instance as the registry does ("user-<uuid>").
func (s *Service) Instance() string { return s.cfg.Name + "-" + s.server.Options().Id }

// Draining reports whether shutdown has begun.
func (s *Service) Draining() bool { return s.draining.Load() }

// Healthy reports whether the instance has registered, is not draining,
// and its handlers are not stuck (handlers in flight and none finished for
// twice the client request timeout): what GET /health and the gRPC health
// check (Health) answer.
func (s *Service) Healthy() bool {
	return s.reg.registered.Load() && !s.Draining() && !s.inFlight.stuck(time.Now(), s.stuckAfter)
}

// Run starts the server, registers it, and serves until ctx is done. Then it
// deregisters, keeps serving for the drain period so that callers whose
// cached node list still names this instance are answered, and stops once
// calls in flight have finished. It fails if the registry cannot be reached
// at start.
func (s *Service) Run(ctx context.Context) error {
	// Bind first: a port already in use fails here, before the registry is
	// asked anything, let alone told about an instance that cannot serve.
	// go-micro's gRPC server would bind in Start and register right after.
	ln, err := net.Listen("tcp", s.cfg.ServerAddress)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	hln, err := net.Listen("tcp", s.healthAddress())
	if err != nil {
		ln.Close()
		return fmt.Errorf("health: %w", err)
	}
	stopMetrics, err := s.serveMetrics()
	if err != nil {
		ln.Close()
		hln.Close()
		return fmt.Errorf("metrics: %w", err)
	}
	defer stopMetrics()
	// Registration asks Consul to check the port just bound.
	s.reg.healthPort = hln.Addr().(*net.TCPAddr).Port
	s.health = healthServer(s.Healthy)
	go func() {
		if err := s.health.Serve(hln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("health", "err", err)
		}
	}()
	if err := s.start(ctx, ln); err != nil {
		ln.Close()
		s.health.Close()
		return err
	}
	s.log.Info("serving", "instance", s.Instance(), "address", s.server.Options().Address, "health", hln.Addr().String(),
		"registry", s.cfg.Registry.Name, "register_ttl", s.cfg.RegisterTTL, "register_interval", s.cfg.RegisterInterval,
		"mutual_tls", s.cfg.TLS.Enabled())

	<-ctx.Done()
	s.Shutdown()
	return nil
}

// start checks the registry, then serves on ln and registers.
func (s *Service) start(ctx context.Context, ln net.Listener) error {
	if err := discovery.Ping(ctx, s.cfg.Registry, s.registry, s.cfg.RegistryAttempts, time.Second, func(format string, args ...any) {
		s.log.Warn(fmt.Sprintf(format, args...))
	}); err != nil {
		return err
	}
	if err := s.server.Init(grpcserver.Listener(ln)); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if err := s.server.Start(); err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	// go-micro's server logs a failed first registration and serves on,
	// trying again every interval. A registry that refused this service's
	// credentials will refuse them again: stop rather than serve unlisted.
	if err := s.reg.lastErr(); !s.reg.registered.Load() && discovery.IsDenied(err) {
		if serr := discovery.Call(context.Background(), s.cfg.ShutdownTimeout, s.server.Stop); serr != nil {
			s.log.Error("stop server", "err", serr)
		}
		return fmt.Errorf("%w: %s: register: %v", discovery.ErrDenied, s.cfg.Registry.Name, err)
	}
	return nil
}

// Shutdown deregisters, drains and stops. Every step that waits on the
// registry or on handlers is bounded by the shutdown timeout and logged.
func (s *Service) Shutdown() {
	start := time.Now()
	s.draining.Store(true)
	if s.deregister() {
		time.Sleep(s.cfg.Drain)
	} else {
		// Callers cannot learn from the registry that this instance is
		// leaving, so draining would only delay the stop: they fail over
		// to another instance when this one refuses their connection.
		s.log.Warn("registry unreachable: stopping without drain", "instance", s.Instance())
	}
	if err := discovery.Call(context.Background(), s.cfg.ShutdownTimeout, s.server.Stop); err != nil {
		s.log.Error("stop server", "err", err)
	}
	if s.health != nil {
		s.health.Close() // it has answered "not serving" since the drain began
	}
	// Spans of the last calls, not yet sent: a collector that is down
	// must not hold up the stop.
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	if err := s.tracing.Shutdown(ctx); err != nil {
		s.log.Warn("traces not sent", "err", err)
	}
	cancel()
	s.log.Info("stopped", "instance", s.Instance(), "took", time.Since(start).Round(time.Millisecond))
}

// healthAddress is where GET /health listens: --health_address, or the
// host of the RPC address and a free port.
func (s *Service) healthAddress() string {
	if s.cfg.HealthAddress != "" {
		return s.cfg.HealthAddress
	}
	host, _, _ := net.SplitHostPort(s.cfg.ServerAddress) // checked by Validate
	return net.JoinHostPort(host, "0")
}

// deregister removes this instance from the registry and reports whether
// that worked.
func (s *Service) deregister() bool {
	type deregisterer interface{ Deregister() error }
	d, ok := s.server.(deregisterer)
	if !ok {
		return false
	}
	if err := discovery.Call(context.Background(), s.cfg.ShutdownTimeout, d.Deregister); err != nil {
		s.log.Error("deregister", "instance", s.Instance(), "err", err)
		return false
	}
	return true
}

// useTLS loads the instance's TLS identity, if cfg names one, into its
// client's settings and returns the server's option for it. Without one
// it warns: anyone who reaches the port can call.
func useTLS(cfg *Config, log *slog.Logger) ([]server.Option, error) {
	if !cfg.TLS.Enabled() {
		log.Warn("no --tls_* flags: RPC in plaintext, any process that reaches the port can call it")
		return nil, nil
	}
	id, err := mtls.Load(cfg.TLS, log)
	if err != nil {
		return nil, err
	}
	if names := id.Names(); !slices.Contains(names, cfg.Name) {
		// Not fatal: it is what an impostor looks like, and tests start one.
		log.Warn("tls: the certificate does not name this service: callers will refuse this instance", "names", names)
	}
	cfg.Client.TLS = id
	return []server.Option{grpcserver.AuthTLS(id.ServerConfig())}, nil
}
