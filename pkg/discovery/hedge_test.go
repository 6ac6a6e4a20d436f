package discovery

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestHedged: the first answer wins, whether a copy sent later answers
// while the first waits on a member that never will, or the first copy is
// slow and the copies sent after it never answer.
func TestHedged(t *testing.T) {
	refused := errors.New("etcdserver: permission denied")
	forever := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	for _, tc := range []struct {
		name   string
		copies []func(ctx context.Context) error // what the n-th copy sent does
		want   error
	}{
		{"first copy on a paused member, second answers", []func(context.Context) error{
			forever,
			func(context.Context) error { return nil },
		}, nil},
		{"first copy slow but answering (a loaded disk), later ones never", []func(context.Context) error{
			func(context.Context) error { time.Sleep(3 * etcdHedge); return refused },
			forever, forever,
		}, refused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			ctx, cancel := context.WithTimeout(context.Background(), 10*etcdHedge)
			defer cancel()
			_, err := hedged(ctx, func(ctx context.Context) (struct{}, error) {
				i := int(n.Add(1)) - 1
				if i >= len(tc.copies) {
					return struct{}{}, forever(ctx)
				}
				return struct{}{}, tc.copies[i](ctx)
			})
			if !errors.Is(err, tc.want) && err != tc.want {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}
