package wrappers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/example/micro-starter/internal/poll"
)

// TestCallerFailuresCountAgainstNobody floods a client with calls that fail
// in the caller: they must not open the callee's circuit, eject its
// instance or be retried, and healthy calls pass afterwards. go-micro's gRPC
// client reports each of them as it reports a failed connection (a 500 or a
// 408 of its own).
func TestCallerFailuresCountAgainstNobody(t *testing.T) {
	for _, tc := range []struct {
		name string
		hang bool // the callee holds calls until the caller gives up
		// call makes one failing call.
		call func(t *testing.T, c client.Client, svc string, echo *Echo) error
		// attempts is how many attempts each call makes: 0 when it cannot
		// leave the caller.
		attempts int64
	}{
		{"request that cannot be encoded", false, func(_ *testing.T, c client.Client, svc string, _ *Echo) error {
			// Invalid UTF-8 in a proto string, as from "GET /hello?name=%ff".
			req := c.NewRequest(svc, "Echo.Call", wrapperspb.String("\xff"), client.WithContentType("application/grpc+proto"))
			return c.Call(context.Background(), req, &EchoResponse{})
		}, 0},
		{"context cancelled before the call", false, func(_ *testing.T, c client.Client, svc string, _ *Echo) error {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_, err := call(ctx, c, svc)
			return err
		}, 0},
		{"context cancelled during the call", true, func(t *testing.T, c client.Client, svc string, echo *Echo) error {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			before := echo.calls.Load()
			done := make(chan error, 1)
			go func() {
				_, err := call(ctx, c, svc)
				done <- err
			}()
			if err := poll.Until(5*time.Second, time.Millisecond, func() error {
				if echo.calls.Load() == before {
					return errors.New("the call has not reached the callee")
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			cancel()
			return <-done
		}, 1},
		{"deadline expired during the call", true, func(_ *testing.T, c client.Client, svc string, _ *Echo) error {
			// Well within the attempt timeout: the caller's own deadline.
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			_, err := call(ctx, c, svc)
			return err
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := registry.NewMemoryRegistry()
			svc := serviceName(t)
			echo := mustServe(t, reg, svc, "a")
			if tc.hang {
				echo.hang = make(chan struct{})
			}
			cfg := DefaultConfig()
			// An opened circuit stays open until the test ends.
			cfg.Breaker.SleepWindow = time.Minute
			outliers := NewOutliers(outlierFailures, outlierCooldown)
			var attempts atomic.Int64
			c := newClient(reg, cfg, outliers, client.WrapCall(countAttempts(&attempts)))

			calls := 2 * cfg.Breaker.VolumeThreshold
			for i := range calls {
				err := tc.call(t, c, svc, echo)
				if got := Classify(context.Background(), err); got != CallerFault {
					t.Errorf("call %d: %v: blamed on %v, want the caller", i, err, got)
				}
			}
			if got, want := attempts.Load(), int64(calls)*tc.attempts; got != want {
				t.Errorf("%d calls made %d attempts, want %d", calls, got, want)
			}
			if outliers.Ejected(svc + "-a") {
				t.Error("the callee's only instance was ejected")
			}
			if tc.hang {
				close(echo.hang)
			}
			for i := range 20 {
				if _, err := call(context.Background(), c, svc); err != nil {
					t.Fatalf("healthy call %d after the flood: %v", i, err)
				}
			}
		})
	}
}

// countAttempts counts the attempts of every call.
func countAttempts(n *atomic.Int64) client.CallWrapper {
	return func(next client.CallFunc) client.CallFunc {
		return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
			n.Add(1)
			return next(ctx, node, req, rsp, opts)
		}
	}
}

func TestClassify(t *testing.T) {
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	// The client's own request timeout, over a caller that is still waiting.
	requestTimeout, cancelRequest := context.WithCancel(derivedFrom(context.Background(), context.Background()))
	cancelRequest()
	live := context.Background()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want Fault
	}{
		{"success", live, nil, NoFault},
		{"not found", live, merrors.NotFound("user.Get", "nobody"), NoFault},
		{"not found as text", live, stringError(merrors.NotFound("user.Get", "nobody").Error()), NoFault},
		{"bad request from a non-go-micro server", live, merrors.BadRequest(clientID, "invalid argument"), NoFault},
		{"service error", live, merrors.InternalServerError("user.Get", "boom"), CalleeFault},
		{"service timeout", live, merrors.Timeout("hello.Greet", "user.Get: timeout"), CalleeFault},
		{"service error after the caller gave up", ended, merrors.InternalServerError("user.Get", "boom"), CalleeFault},
		{"unimplemented", live, merrors.New(clientID, "unknown method", 501), CalleeFault},
		{"plain error", live, errors.New("boom"), CalleeFault},
		{"failed dial", live, merrors.InternalServerError(clientID, "Error sending request: context deadline exceeded"), NetworkFault},
		{"closed connection", live, merrors.New(clientID, "connection error", 503), NetworkFault},
		{"attempt timeout", live, merrors.Timeout(clientID, "context deadline exceeded"), NetworkFault},
		{"request timeout of the client", requestTimeout, merrors.Timeout(clientID, "context canceled"), NetworkFault},
		{"caller's context ended", ended, merrors.Timeout(clientID, "context canceled"), CallerFault},
		{"caller's context ended, seen deeper in the chain", derivedFrom(ended, ended), merrors.Timeout(clientID, "context canceled"), CallerFault},
		{"caller's context ended, plain error", ended, context.Canceled, CallerFault},
		{"marked by the caller", live, ByCaller(merrors.InternalServerError(clientID, "bad input")), CallerFault},
		{"marked by the caller, wrapped", live, fmt.Errorf("x: %w", ByCaller(errors.New("bad input"))), CallerFault},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.ctx, tc.err); got != tc.want {
				t.Fatalf("Classify(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// A body is encoded into its request as go-micro's client plugin encodes
// it (proto.Marshal, protojson.Marshal, json.Marshal), whatever its size,
// and fails as they fail.
func TestEncodeAsThePlugin(t *testing.T) {
	long := strings.Repeat("<&> é ", 100) // past smallBody; escaped by json.Marshal
	for _, tc := range []struct {
		name        string
		contentType string
		body        any
		want        func(any) ([]byte, error)
	}{
		{"proto", "application/grpc+proto", wrapperspb.String("hi"), func(v any) ([]byte, error) { return proto.Marshal(v.(proto.Message)) }},
		{"proto, long", "application/protobuf", wrapperspb.String(long), func(v any) ([]byte, error) { return proto.Marshal(v.(proto.Message)) }},
		{"proto, empty", "application/grpc", &wrapperspb.StringValue{}, func(v any) ([]byte, error) { return proto.Marshal(v.(proto.Message)) }},
		{"proto as JSON", "application/json", wrapperspb.String(long), func(v any) ([]byte, error) { return protojson.Marshal(v.(proto.Message)) }},
		{"JSON", "application/json", &EchoRequest{Text: "hi"}, json.Marshal},
		{"JSON, long", "application/grpc+json", &EchoRequest{Text: long}, json.Marshal},
		{"JSON, not encodable", "application/json", map[string]any{"c": make(chan int)}, json.Marshal},
		{"proto, invalid UTF-8", "application/grpc+proto", wrapperspb.String("\xff"), func(v any) ([]byte, error) { return proto.Marshal(v.(proto.Message)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, wantErr := tc.want(tc.body)
			r, ok, err := encodeRequest(client.NewRequest("s", "E.Call", tc.body, client.WithContentType(tc.contentType)))
			if (err != nil) != (wantErr != nil) || !ok && err == nil {
				t.Fatalf("encoded: %v (ok %v), want error %v", err, ok, wantErr)
			}
			if err != nil {
				return
			}
			if !bytes.Equal(r.frame.Data, want) || !bytes.Equal(r.wire.sb, want) {
				t.Errorf("encoded %q, want %q", r.frame.Data, want)
			}
		})
	}
}

// CallerChecks' own cost per call: one request holding the encoded body
// and the buffers gRPC sends (the body besides: 2 before; the caller's
// mark on the context besides: 3 before that, now only on the contexts
// the client derives; a frame of its own besides: 4 before that).
func TestCallerChecksAllocations(t *testing.T) {
	c := chain(answered{}, CallerChecks())
	req := client.NewRequest("s", "Echo.Call", &EchoRequest{Text: "hi"}, client.WithContentType("application/json"))
	var rsp EchoResponse
	allocs := testing.AllocsPerRun(1000, func() {
		if err := c.Call(context.Background(), req, &rsp); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.1f allocations per call", allocs)
	limit := 1.0
	if raceAllocs > 0 {
		limit = 2 // the race detector drops pooled JSON encoders at random
	}
	if allocs > limit {
		t.Errorf("%.1f allocations per call, want at most %.0f", allocs, limit)
	}
}
