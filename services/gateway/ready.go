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
//
// It is discovery.Ready with each failure told apart, which that function's
// untyped errors do not allow.
func readiness(reg registry.Registry, timeout time.Duration, draining func() bool, services ...string) func(context.Context) error {
	return func(ctx context.Context) error {
		if draining() {
			return &notReady{reason: "shutting down"}
		}
		err := discovery.Call(ctx, timeout, func() error {
			for _, name := range services {
				svcs, err := reg.GetService(name)
				if err != nil && !errors.Is(err, registry.ErrNotFound) {
					return &notReady{reason: "registry unreachable", err: err}
				}
				if !hasNode(svcs) {
					return &notReady{reason: "no instance of " + name}
				}
			}
			return nil
		})
		if err != nil && !errors.As(err, new(*notReady)) {
			// No answer within timeout, or the caller of /readyz went away.
			return &notReady{reason: "registry unreachable", err: err}
		}
		return err
	}
}

func hasNode(svcs []*registry.Service) bool {
	for _, s := range svcs {
		if len(s.Nodes) > 0 {
			return true
		}
	}
	return false
}
