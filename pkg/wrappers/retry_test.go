package wrappers

import (
	"context"
	"testing"
	"time"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
)

// TestAttemptTimeout: an attempt ends at the earlier of the caller's
// deadline and the attempt timeout, and a caller's deadline within the
// attempt timeout is used as it is, without a context of its own.
func TestAttemptTimeout(t *testing.T) {
	const d = time.Second
	cases := []struct {
		name     string
		deadline time.Duration // of the caller's context; 0: none
		want     time.Duration // attempt's deadline from now
	}{
		{"no deadline", 0, d},
		{"caller's deadline later", 5 * time.Second, d},
		{"caller's deadline sooner", 200 * time.Millisecond, 200 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}
			var got time.Duration
			call := AttemptTimeout(d)(func(ctx context.Context, _ *registry.Node, _ client.Request, _ interface{}, _ client.CallOptions) error {
				end, ok := ctx.Deadline()
				if !ok {
					t.Fatal("the attempt has no deadline")
				}
				got = time.Until(end)
				return nil
			})
			if err := call(ctx, &registry.Node{}, nil, nil, client.CallOptions{}); err != nil {
				t.Fatal(err)
			}
			if got > tc.want || got < tc.want-100*time.Millisecond {
				t.Errorf("attempt deadline in %v, want %v", got, tc.want)
			}
		})
	}
}

// TestAttemptWithinCallerDeadlineAllocatesNothing: a service calling on
// inside a call it serves (its context ends within the attempt timeout)
// makes no context and no timer per attempt (2 allocations here before).
func TestAttemptWithinCallerDeadlineAllocatesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	call := AttemptTimeout(time.Hour)(func(context.Context, *registry.Node, client.Request, interface{}, client.CallOptions) error {
		return nil
	})
	node := &registry.Node{}
	if allocs := testing.AllocsPerRun(100, func() {
		_ = call(ctx, node, nil, nil, client.CallOptions{})
	}); allocs != 0 {
		t.Errorf("%v allocations per attempt, want 0", allocs)
	}
}
