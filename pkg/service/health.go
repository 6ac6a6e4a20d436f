package service

import (
	"context"

	merrors "go-micro.dev/v4/errors"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Health answers the standard gRPC health check, grpc.health.v1.Health/Check,
// on the instance's RPC port: SERVING once the instance has registered and
// until it starts draining, NOT_SERVING before and after. --health_probe
// asks it, and so can grpc_health_probe, Kubernetes and Consul's gRPC check.
//
// It is a go-micro handler: go-micro's gRPC server routes a call by the last
// part of the service name ("Health") and method, and decodes
// application/grpc as protobuf, which is what every gRPC client sends.
// Only Check is served; Watch answers "unknown".
//
// A registry that fails after the first registration does not make the
// instance unhealthy: it keeps serving the callers that have it cached, and
// restarting it would not bring the registry back.
type Health struct {
	service string
	healthy func() bool
}

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
