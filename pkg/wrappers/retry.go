package wrappers

import (
	"context"
	"time"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
)

// clientID is the id go-micro's client gives the errors it raises itself
// (a refused or broken connection, a timeout), as opposed to errors a
// service returned, which carry the service's id. Our wrappers use it for
// theirs too.
const clientID = "go.micro.client"

// RetryTransportErrors retries a call that never got an answer from a
// service: a connection that failed or an attempt that timed out
// (NetworkFault). go-micro's default (RetryOnError) retries timeouts only, so
// a dead instance still in the caller's node list fails calls instead of
// failing over.
//
// Errors a service returned are never retried, whatever their code: the
// service answered. Nor are the caller's own failures (CallerFault): another
// instance would fail the same way. Retried calls must be safe to repeat: a
// connection that broke after sending may have reached the service.
// A server that passes on an error of its own client gives it its own id
// (pkg/service), or its callers would retry it as well.
func RetryTransportErrors(ctx context.Context, _ client.Request, _ int, err error) (bool, error) {
	return Classify(ctx, err) == NetworkFault, nil
}

// failoverBackoff retries at once: the retry goes to the next instance, so
// waiting would only add latency. Later retries back off a little in case
// every instance is struggling.
func failoverBackoff(_ context.Context, _ client.Request, attempt int) (time.Duration, error) {
	if attempt <= 1 {
		return 0, nil
	}
	return time.Duration(attempt-1) * 50 * time.Millisecond, nil
}

// AttemptTimeout bounds each attempt, so a hung instance costs one attempt
// and not the whole request timeout: go-micro bounds only the call as a
// whole. A context that ends within d already bounds the attempt and is
// used as it is: a service calling on inside a call it serves gets the
// caller's shorter deadline, and a new context would cost allocations and
// a timer per call for nothing.
func AttemptTimeout(d time.Duration) client.CallWrapper {
	return func(next client.CallFunc) client.CallFunc {
		return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
			if end, ok := ctx.Deadline(); ok && time.Until(end) <= d {
				return next(ctx, node, req, rsp, opts)
			}
			ctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			return next(ctx, node, req, rsp, opts)
		}
	}
}
