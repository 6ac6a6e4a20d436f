package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/example/micro-starter/pkg/tracing"
	hellopb "github.com/example/micro-starter/services/hello/proto"
)

// spanHello answers Greet with err and keeps the span its call was made in.
type spanHello struct {
	hellopb.HelloService
	err  error
	span trace.SpanContext
	md   metadata.Metadata
}

func (h *spanHello) Greet(ctx context.Context, _ *hellopb.GreetRequest, _ ...client.CallOption) (*hellopb.GreetResponse, error) {
	h.span = trace.SpanContextFromContext(ctx)
	h.md, _ = metadata.FromContext(ctx)
	if h.err != nil {
		return nil, h.err
	}
	return &hellopb.GreetResponse{Message: "Hello, x!"}, nil
}

// Each HTTP request is the root of a trace, even when the client sends a
// trace context, named after its route; the calls made for it are in it,
// and a failed request's log line and span name its trace and request id.
func TestTracedRequest(t *testing.T) {
	for _, tc := range []struct {
		name       string
		helloErr   error
		wantStatus int
	}{
		{"answered", nil, http.StatusOK},
		{"failed", merrors.InternalServerError("hello", "boom"), http.StatusBadGateway},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			var logs bytes.Buffer
			hello := &spanHello{err: tc.helloErr}
			api := &API{hello: hello, ready: func(context.Context) error { return nil }, log: tracing.NewLogger(&logs, "json")}
			h := traced(tracing.Provider(tp, nil), api.Handler())

			req := httptest.NewRequest("GET", "/hello?name=x", nil)
			req.Header.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.wantStatus, w.Body)
			}
			spans := rec.Ended()
			if len(spans) != 1 {
				t.Fatalf("%d spans, want 1", len(spans))
			}
			s := spans[0]
			if s.Name() != "GET /hello" || s.Parent().IsValid() || s.SpanKind() != trace.SpanKindServer {
				t.Errorf("span %q, parent %v, kind %v: want a root server span GET /hello", s.Name(), s.Parent().SpanID(), s.SpanKind())
			}
			if hello.span.SpanID() != s.SpanContext().SpanID() {
				t.Errorf("hello called in span %v, want the request's %v", hello.span.SpanID(), s.SpanContext().SpanID())
			}
			attrs := map[string]string{}
			for _, kv := range s.Attributes() {
				attrs[string(kv.Key)] = kv.Value.Emit()
			}
			id := w.Header().Get(requestIDHeader)
			if attrs["request_id"] != id || attrs["http.response.status_code"] != strconv.Itoa(tc.wantStatus) {
				t.Errorf("span attributes %v, want request_id %s and status %d", attrs, id, tc.wantStatus)
			}
			if failed := s.Status().Code == codes.Error; failed != (tc.helloErr != nil) {
				t.Errorf("span failed %v, want %v", failed, tc.helloErr != nil)
			}
			if tc.helloErr != nil {
				want := []string{`"trace_id":"` + s.SpanContext().TraceID().String() + `"`, `"request_id":"` + id + `"`}
				for _, w := range want {
					if !strings.Contains(logs.String(), w) {
						t.Errorf("log %q lacks %s", logs.String(), w)
					}
				}
			}
		})
	}
}

// A request the ratio does not draw gets no span but ids of its own: its
// calls go out in the trace its request id names (tracing.TraceIDOf), not
// sampled, with its request id alone (the services called derive the same
// trace id from it; no -00 traceparent); its log lines name the trace, the
// span and the request; nothing reaches the collector.
func TestUnsampledRequest(t *testing.T) {
	var posts atomic.Int32
	collector := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	t.Cleanup(collector.Close)
	tr, err := tracing.New(tracing.Config{OTLPEndpoint: collector.URL, SampleRatio: 0, LogFormat: "json"}, "gateway")
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	hello := &spanHello{err: merrors.InternalServerError("hello", "boom")}
	api := &API{hello: hello, ready: func(context.Context) error { return nil }, log: tracing.NewLogger(&logs, "json")}
	w := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/hello?name=x", nil)
	req.Header.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00") // ignored
	traced(tr, api.Handler()).ServeHTTP(w, req)
	if w.Code != http.StatusBadGateway {
		t.Fatalf("status %d, want 502: %s", w.Code, w.Body)
	}
	sc := hello.span
	id := w.Header().Get(requestIDHeader)
	if !sc.IsValid() || sc.IsSampled() || sc.TraceID().String() != "0000000000000000"+id {
		t.Fatalf("hello called in %v: want trace 0000000000000000%s, not sampled", sc, id)
	}
	if _, tp := hello.md["Traceparent"]; tp || hello.md[requestIDHeader] != id {
		t.Errorf("hello called with metadata %v, want request id %s and no traceparent", hello.md, id)
	}
	for _, want := range []string{`"trace_id":"` + sc.TraceID().String() + `"`, `"span_id":"` + sc.SpanID().String() + `"`, `"request_id":"` + id + `"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log %q lacks %s", logs.String(), want)
		}
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := posts.Load(); n != 0 {
		t.Errorf("the collector got %d exports, want none", n)
	}
}

// BenchmarkTraced is what traced costs an HTTP request: sampled (a root
// span, not exported), not sampled (ids only), tracing off; the request id
// and its metadata as API.Handler makes them, the recorder included.
func BenchmarkTraced(b *testing.B) {
	sink, _ := collector(b)
	on := func(ratio float64) *tracing.Tracing {
		tr, err := tracing.New(tracing.Config{OTLPEndpoint: sink, SampleRatio: ratio, LogFormat: "text"}, "gateway")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
		return tr
	}
	off, err := tracing.New(tracing.DefaultConfig(), "gateway")
	if err != nil {
		b.Fatal(err)
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(requestIDHeader, "0123456789abcdef")
		_ = withRequestID(r.Context(), "0123456789abcdef")
		w.WriteHeader(http.StatusOK)
	})
	req := httptest.NewRequest("GET", "/hello?name=x", nil)
	for _, v := range []struct {
		name string
		tr   *tracing.Tracing
	}{{"sampled", on(1)}, {"unsampled", on(0)}, {"off", off}} {
		h := traced(v.tr, next)
		b.Run(v.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}

// dropSpans is a span processor that keeps nothing.
type dropSpans struct{}

func (dropSpans) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (dropSpans) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (dropSpans) Shutdown(context.Context) error                  { return nil }
func (dropSpans) ForceFlush(context.Context) error                { return nil }

// A sampled request's root span costs the SDK's span and its four
// attributes, set at once, with start options made once: 139e8b9 made the
// options and two attribute slices per request (4 allocations more).
func TestSampledRootCost(t *testing.T) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(dropSpans{}))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	h := traced(tracing.Provider(tp, nil), next)
	req := httptest.NewRequest("GET", "/hello?name=x", nil)
	w := &discardWriter{header: http.Header{}}
	// The span, its context, its attributes' slice and growth, the
	// request's copy, the status writer, the snapshot at End...: 9, 10
	// under -race.
	if allocs := testing.AllocsPerRun(200, func() { h.ServeHTTP(w, req) }); allocs > 10 {
		t.Errorf("%.0f allocations per sampled request, want at most 10", allocs)
	}
}

// discardWriter is a ResponseWriter that keeps nothing.
type discardWriter struct{ header http.Header }

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}
