package tracing

import (
	"context"
	"testing"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// dropSpans is a span processor that keeps nothing: the benchmarks count
// what our wrappers and the SDK's spans cost, not an exporter's.
type dropSpans struct{}

func (dropSpans) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (dropSpans) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (dropSpans) Shutdown(context.Context) error                  { return nil }
func (dropSpans) ForceFlush(context.Context) error                { return nil }

// benchHop is one hop as a service makes it for a request: the handler's
// wrapper, the client's call and attempt wrappers, and the metadata as our
// gRPC server hands it over (lower-case keys, the caller's address).
func benchHop(b *testing.B, tr *Tracing, traceparent string) {
	b.Helper()
	node := &registry.Node{Id: "user-1", Address: "127.0.0.1:1"}
	cl := tr.ClientWrapper()(&fakeClient{call: tr.CallWrapper()(func(context.Context, *registry.Node, client.Request, interface{}, client.CallOptions) error {
		return nil
	}), nodes: []*registry.Node{node}})
	h := tr.HandlerWrapper()(func(ctx context.Context, _ server.Request, _ interface{}) error {
		return cl.Call(ctx, fakeRequest{}, nil)
	})
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		md := metadata.Metadata{
			"x-request-id": "0123456789abcdef", "content-type": "application/grpc+json", "user-agent": "grpc-go/1.65.0",
			":authority": "127.0.0.1:1", "Remote": "127.0.0.1:2",
		}
		if traceparent != "" {
			md["traceparent"] = traceparent
		}
		if err := h(metadata.NewContext(context.Background(), md), fakeServerRequest{}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHop is what tracing costs one service serving a request and
// calling on (a handler, one call, one attempt), the metadata map made per
// request included (as the server makes it): sampled (three spans, not
// exported), not sampled, and tracing off.
func BenchmarkHop(b *testing.B) {
	on := func() *Tracing {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(dropSpans{}), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
		b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		return Provider(tp, nil)
	}
	off, err := New(DefaultConfig(), "user")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("sampled", func(b *testing.B) { benchHop(b, on(), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01") })
	b.Run("unsampled", func(b *testing.B) { benchHop(b, on(), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00") })
	b.Run("off", func(b *testing.B) { benchHop(b, off, "") })
}

// BenchmarkRootCall is a call made outside any request, sampled: the
// call's and the attempt's spans.
func BenchmarkRootCall(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(dropSpans{}))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr := Provider(tp, nil)
	cl := tr.ClientWrapper()(&fakeClient{call: tr.CallWrapper()(func(ctx context.Context, _ *registry.Node, _ client.Request, _ interface{}, _ client.CallOptions) error {
		if !trace.SpanContextFromContext(ctx).IsSampled() {
			b.Fatal("not sampled")
		}
		return nil
	}), nodes: []*registry.Node{{Id: "user-1", Address: "127.0.0.1:1"}}})
	b.ReportAllocs()
	for range b.N {
		_ = cl.Call(context.Background(), fakeRequest{}, nil)
	}
}
