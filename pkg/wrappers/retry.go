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
// whole.
//
// An attempt also takes at most half of what is left before the caller's
// own deadline. A handler calling on is such a caller: its deadline is the
// attempt timeout of the hop above, as long as d. Without the halving, its
// attempt on a hung instance would end with that deadline, count against
// nobody (the caller gave up) and leave no time to fail over; with it, the
// attempt times out first, counts against the hung instance, and the retry
// goes to another instance within the caller's time.
func AttemptTimeout(d time.Duration) client.CallWrapper {
	return func(next client.CallFunc) client.CallFunc {
		return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
			ctx, cancel := context.WithTimeout(ctx, attemptBudget(ctx, d))
			defer cancel()
			return next(ctx, node, req, rsp, opts)
		}
	}
}

// attemptBudget is d, or half of the time left before the caller's
// deadline if that is shorter.
func attemptBudget(ctx context.Context, d time.Duration) time.Duration {
	caller, ok := ctx.Value(callerKey{}).(context.Context)
	if !ok {
		caller = ctx
	}
	if deadline, ok := caller.Deadline(); ok {
		if half := time.Until(deadline) / 2; half < d {
			return half
		}
	}
	return d
}
