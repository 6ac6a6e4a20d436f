package service

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"

	"github.com/example/micro-starter/pkg/wrappers"
)

// Relay is a handler that calls another service and returns the error it
// got as it got it, as a handler may well do.
type Relay struct {
	call    func(ctx context.Context) error
	started atomic.Int64
}

func (r *Relay) Call(ctx context.Context, _ *EchoRequest, _ *EchoResponse) error {
	r.started.Add(1)
	return r.call(ctx)
}

// TestPassedOnErrorsAreNotRetriedUpstream: a handler returns the error its
// own client gave it unchanged. Its caller must make exactly one attempt: an
// error that kept go-micro's client id would be taken by the caller's
// client for its own connection failing, and retried on another instance
// at every hop. Codes are kept, a 4xx included.
func TestPassedOnErrorsAreNotRetriedUpstream(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup registers the callee, if any, in reg.
		setup func(t *testing.T, reg registry.Registry)
		// call is the relay's call of its callee.
		call   func(ctx context.Context, c client.Client) error
		code   int32
		ownsID bool // whether the caller sees the relay's id
	}{
		{"callee unreachable", func(t *testing.T, reg registry.Registry) {
			err := reg.Register(&registry.Service{Name: "callee", Nodes: []*registry.Node{{Id: "callee-dead", Address: closedAddress(t)}}})
			if err != nil {
				t.Fatal(err)
			}
		}, callCallee, 503, true}, // gRPC: a refused connection is Unavailable
		{"callee has no instance", func(*testing.T, registry.Registry) {}, callCallee, 503, true},
		{"callee timed out", func(*testing.T, registry.Registry) {}, func(context.Context, client.Client) error {
			return merrors.Timeout("go.micro.client", "context deadline exceeded")
		}, 408, true},
		{"callee's not found", func(*testing.T, registry.Registry) {}, func(context.Context, client.Client) error {
			return merrors.NotFound("callee.Get", "nobody")
		}, 404, false},
		{"plain error", func(*testing.T, registry.Registry) {}, func(context.Context, client.Client) error {
			return context.Canceled
		}, 500, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := mustNew(t, testConfig())
			tc.setup(t, svc.Registry())
			relay := &Relay{call: func(ctx context.Context) error { return tc.call(ctx, svc.Client()) }}
			mustHandle(t, svc, relay)
			start(t, svc)
			mustRegistered(t, svc)

			c := svc.Client()
			req := c.NewRequest("test", "Relay.Call", &EchoRequest{Text: "hi"}, client.WithContentType("application/json"))
			err := c.Call(context.Background(), req, &EchoResponse{})
			e, ok := wrappers.Error(err)
			if !ok || e.Code != tc.code {
				t.Fatalf("got %v, want code %d", err, tc.code)
			}
			if got := e.Id == "test"; got != tc.ownsID {
				t.Errorf("got id %q; want the relay's (%q): %v", e.Id, "test", tc.ownsID)
			}
			if n := relay.started.Load(); n != 1 {
				t.Fatalf("the relay ran %d times, want 1 (no retry)", n)
			}
		})
	}
}

func callCallee(ctx context.Context, c client.Client) error {
	req := c.NewRequest("callee", "Echo.Call", &EchoRequest{Text: "hi"}, client.WithContentType("application/json"))
	return c.Call(ctx, req, &EchoResponse{})
}

// TestAnswerAfterCallersDeadlineIsRetried: a handler whose caller's
// deadline passed while its own call waited (on a hung callee) answers
// with its client's timeout. The caller takes it for its own attempt
// timing out and retries on another instance, as its own timer would have
// made it do; under the handler's id the answer beat that timer and was
// final.
func TestAnswerAfterCallersDeadlineIsRetried(t *testing.T) {
	c := testConfig()
	c.Client.AttemptTimeout, c.Client.RequestTimeout, c.Client.Retries = 300*time.Millisecond, 5*time.Second, 2
	svc := mustNew(t, c)
	relay := &Relay{}
	relay.call = func(ctx context.Context) error {
		if relay.started.Load() > 1 {
			return nil // the retry: another callee answers
		}
		<-ctx.Done() // the hung callee
		return merrors.Timeout("go.micro.client", "%v", ctx.Err())
	}
	mustHandle(t, svc, relay)
	start(t, svc)
	mustRegistered(t, svc)

	for i := range 5 {
		relay.started.Store(0)
		cl := svc.Client()
		req := cl.NewRequest("test", "Relay.Call", &EchoRequest{Text: "hi"}, client.WithContentType("application/json"))
		if err := cl.Call(context.Background(), req, &EchoResponse{}); err != nil {
			t.Fatalf("call %d: %v, want success on the retry", i, err)
		}
		if n := relay.started.Load(); n != 2 {
			t.Fatalf("call %d: the relay ran %d times, want 2", i, n)
		}
	}
}
