package wrappers

import (
	"context"
	"time"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
)

// The ids go-micro's client gives the errors it raises itself, as opposed to
// errors a service returned: a refused connection or a timeout, and a
// connection that broke while sending or receiving.
const (
	clientID    = "go.micro.client"
	transportID = "go.micro.client.transport"
)

// RetryTransportErrors retries a call that never got an answer from a
// service: a connection that failed or an attempt that timed out. go-micro's
// default (RetryOnError) retries timeouts only, so a dead instance still in
// the caller's node list fails calls instead of failing over.
//
// Errors a service returned are never retried, whatever their code: the
// service answered. Retried calls must be safe to repeat: a connection that
// broke after sending may have reached the service.
// Services that pass on an error from a call of their own must give it their
// own id (see services/hello), or their callers would retry it as well.
func RetryTransportErrors(_ context.Context, _ client.Request, _ int, err error) (bool, error) {
	e, ok := Error(err)
	if !ok {
		return false, nil
	}
	switch e.Id {
	case transportID:
		return true, nil
	case clientID:
		return e.Code == 500 || e.Code == 408, nil
	default:
		return false, nil
	}
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
// and not the whole request timeout. go-micro only bounds the call as a
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
