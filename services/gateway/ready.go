package main

import (
	"context"
	"errors"
	"time"

	"go-micro.dev/v4/registry"

	"github.com/example/micro-starter/pkg/discovery"
)

// readiness returns the gateway's readiness check: it is not shutting down,
// the registry answers within timeout, and each of services has an
// instance. Its errors are *notReady: a reason fit for any caller of
// /readyz, and the registry's own error for the log.
func readiness(reg registry.Registry, timeout time.Duration, draining func() bool, services ...string) func(context.Context) error {
	return func(ctx context.Context) error {
		if draining() {
			return &notReady{reason: "shutting down"}
		}
		err := discovery.Ready(ctx, reg, timeout, services...)
		var none *discovery.NoInstanceError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &none):
			return &notReady{reason: "no instance of " + none.Service}
		case discovery.IsDenied(err): // a revoked token or user: restarting will not help
			return &notReady{reason: "registry refused access", err: err}
		default: // no answer within timeout, a failing registry, or the caller of /readyz went away
			return &notReady{reason: "registry unreachable", err: err}
		}
	}
}
