package service

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/server"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// An instance is healthy once it has registered, until it starts draining,
// unless its handlers are stuck (see inFlight). Two endpoints answer it:
//   - GET /health on --health_address, plain HTTP (healthServer): what
//     Consul's HTTP check asks, and --health_probe when that port is fixed;
//   - the standard gRPC health check on the RPC port (Health), for gRPC
//     clients such as grpc_health_probe and Kubernetes' gRPC probe.
//
// Consul's check is HTTP rather than gRPC because with mutual TLS the RPC
// port takes only clients with a certificate from the services' CA, and
// Consul's gRPC check presents the agent's own certificate: the agent's
// identity would have to come from the services' CA. /health tells anyone
// who reaches it only whether the instance serves.
//
// A registry that fails after the first registration does not make the
// instance unhealthy: it keeps serving the callers that have it cached, and
// restarting it would not bring the registry back.

// Health answers the standard gRPC health check, grpc.health.v1.Health/Check,
// on the instance's RPC port: SERVING while the instance is healthy,
// NOT_SERVING otherwise.
//
// It is a go-micro handler: go-micro's gRPC server routes a call by the last
// part of the service name ("Health") and method, and decodes
// application/grpc as protobuf, which is what every gRPC client sends.
// Only Check is served; Watch answers "unknown".
type Health struct {
	service string
	healthy func() bool
}

// healthEndpoint is Health's endpoint as go-micro's server names it.
const healthEndpoint = "Health.Check"

// Check answers for the whole server ("") or for the service by name.
func (h *Health) Check(_ context.Context, req *healthpb.HealthCheckRequest, rsp *healthpb.HealthCheckResponse) error {
	if req.Service != "" && req.Service != h.service {
		return merrors.NotFound(h.service, "health: unknown service %q", req.Service)
	}
	rsp.Status = healthpb.HealthCheckResponse_NOT_SERVING
	if h.healthy() {
		rsp.Status = healthpb.HealthCheckResponse_SERVING
	}
	return nil
}

// healthHandler answers GET /health: 200 "serving" or 503 "not serving",
// nothing else.
func healthHandler(healthy func() bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if !healthy() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "not serving\n")
			return
		}
		_, _ = io.WriteString(w, "serving\n")
	})
	return mux
}

// healthServer serves healthHandler. Consul gives up on an answer after 1 s:
// every bound is short, and a client that holds a connection open gets
// nothing more.
func healthServer(healthy func() bool) *http.Server {
	return &http.Server{
		Handler:           healthHandler(healthy),
		ReadHeaderTimeout: time.Second,
		ReadTimeout:       time.Second,
		WriteTimeout:      time.Second,
		IdleTimeout:       10 * time.Second,
		MaxHeaderBytes:    4 << 10,
	}
}

// inFlight counts the handlers running and when the last one finished. The
// instance is stuck when handlers are in flight and none has finished for
// longer than a bound: a handler still running long after every caller
// has given up on it (the client's request timeout), while no other call
// completes, means the instance takes calls it will never answer. One slow
// handler among others that complete is not stuck. Two atomics per call.
type inFlight struct {
	n        atomic.Int64
	progress atomic.Int64 // unix nanoseconds: a handler finished, or one started with none running
}

// wrap is the server handler wrapper that keeps the count. The health
// check is not counted: it is how the state is read.
func (f *inFlight) wrap(h server.HandlerFunc) server.HandlerFunc {
	return func(ctx context.Context, req server.Request, rsp interface{}) error {
		if req.Endpoint() == healthEndpoint {
			return h(ctx, req, rsp)
		}
		if f.n.Load() == 0 {
			f.progress.Store(time.Now().UnixNano())
		}
		f.n.Add(1)
		defer func() {
			f.progress.Store(time.Now().UnixNano())
			f.n.Add(-1)
		}()
		return h(ctx, req, rsp)
	}
}

// stuck reports whether handlers are in flight and none has finished (or
// started with none running) for longer than bound.
func (f *inFlight) stuck(now time.Time, bound time.Duration) bool {
	return f.n.Load() > 0 && now.Sub(time.Unix(0, f.progress.Load())) > bound
}
