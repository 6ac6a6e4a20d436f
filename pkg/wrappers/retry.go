package wrappers

import (
	"context"
	"time"

	"go-micro.dev/v4/client"
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
