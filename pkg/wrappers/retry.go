package wrappers

import (
	"context"
	"time"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
)

// clientID is the id go-micro's client gives the errors it raises itself
// (a refused or broken connection, a timeout), as opposed to errors a
// service returned, which carry the service's id.
const clientID = "go.micro.client"

// RetryTransportErrors retries a call that never got an answer from a
// service: a connection that failed or an attempt that timed out. go-micro's
// default (RetryOnError) retries timeouts only, so a dead instance still in
// the caller's node list fails calls instead of failing over.
//
// Errors a service returned are never retried, whatever their code: the
// service answered. Retried calls must be safe to repeat: a connection that
// broke after sending may have reached the service.
// Services that pass on an error from a call of their own must give it their
// own id (see services/hello), or their callers would retry it as well; the
// server in pkg/service gives any error that is not a go-micro error the
// service's id for the same reason.
func RetryTransportErrors(_ context.Context, _ client.Request, _ int, err error) (bool, error) {
	e, ok := Error(err)
	if !ok {
		return false, nil
	}
	if e.Id != clientID {
		return false, nil
	}
	// gRPC reports a refused or closed connection as Unavailable (503), a
	// failed dial as 500, an attempt that ran out of time as 408.
	return e.Code == 503 || e.Code == 500 || e.Code == 408, nil
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
// whole.
func AttemptTimeout(d time.Duration) client.CallWrapper {
	return func(next client.CallFunc) client.CallFunc {
		return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
			ctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			return next(ctx, node, req, rsp, opts)
		}
	}
}
