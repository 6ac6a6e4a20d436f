package tracing

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// recorded is a Tracing whose spans the test reads once they end.
func recorded(t *testing.T) (*Tracing, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return Provider(tp, tp.Shutdown), rec
}

// fakeClient makes each call as go-micro's client would with two nodes: an
// attempt on each through call, until one succeeds.
type fakeClient struct {
	client.Client
	call  client.CallFunc
	nodes []*registry.Node
}

func (c *fakeClient) Call(ctx context.Context, req client.Request, rsp interface{}, _ ...client.CallOption) error {
	var err error
	for _, n := range c.nodes {
		if err = c.call(ctx, n, req, rsp, client.CallOptions{}); err == nil {
			return nil
		}
	}
	return err
}

type fakeRequest struct{ client.Request }

func (fakeRequest) Service() string  { return "user" }
func (fakeRequest) Endpoint() string { return "Users.Get" }

type fakeServerRequest struct{ server.Request }

func (fakeServerRequest) Service() string  { return "user" }
func (fakeServerRequest) Endpoint() string { return "Users.Get" }

// A call that fails over yields, under the caller's span, one call span with
// two attempt spans naming their instances, and each attempt's handler span
// is its child: the trace context crosses the "wire" (metadata with gRPC's
// lower-case keys) once per attempt, replacing the one the caller's own
// handler received.
func TestCallAttemptHandlerSpans(t *testing.T) {
	tr, rec := recorded(t)
	var logs bytes.Buffer
	log := NewLogger(&logs, "json")

	type served struct {
		sent    metadata.Metadata
		handler trace.SpanContext
	}
	var got []served
	handler := tr.HandlerWrapper()(func(ctx context.Context, _ server.Request, _ interface{}) error {
		log.InfoContext(ctx, "handled")
		got[len(got)-1].handler = trace.SpanContextFromContext(ctx)
		return nil
	})
	wire := func(ctx context.Context, node *registry.Node, _ client.Request, _ interface{}, _ client.CallOptions) error {
		md, _ := metadata.FromContext(ctx)
		got = append(got, served{sent: md})
		if node.Id == "dead" {
			return errors.New("connection refused")
		}
		in := metadata.Metadata{} // as go-micro's gRPC server hands it over
		for k, v := range md {
			in[strings.ToLower(k)] = v
		}
		return handler(metadata.NewContext(context.Background(), in), fakeServerRequest{}, nil)
	}
	cl := tr.ClientWrapper()(&fakeClient{
		call:  tr.CallWrapper()(wire),
		nodes: []*registry.Node{{Id: "dead", Address: "127.0.0.1:1"}, {Id: "live", Address: "127.0.0.1:2"}},
	})

	// The caller is itself a handler: its metadata carries its own caller's
	// trace context (in Title case, as go-micro's plugin writes it) and the
	// request id.
	ctx, root := tr.Tracer().Start(context.Background(), "caller")
	ctx = metadata.NewContext(ctx, metadata.Metadata{
		"Traceparent":  "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"X-Request-Id": "req-1",
	})
	if err := cl.Call(ctx, fakeRequest{}, nil); err != nil {
		t.Fatal(err)
	}
	root.End()

	spans := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		spans[s.Name()] = append(spans[s.Name()], s)
		if s.SpanContext().TraceID() != root.SpanContext().TraceID() {
			t.Errorf("span %q in trace %v, want the caller's %v", s.Name(), s.SpanContext().TraceID(), root.SpanContext().TraceID())
		}
	}
	calls, attempts, handlers := spans["call user.Users.Get"], spans["user.Users.Get"], []sdktrace.ReadOnlySpan{}
	if len(calls) != 1 {
		t.Fatalf("%d call spans, want 1: %v", len(calls), spans)
	}
	if calls[0].Parent().SpanID() != root.SpanContext().SpanID() {
		t.Errorf("call span's parent %v, want the caller's span", calls[0].Parent().SpanID())
	}
	var clientAttempts []sdktrace.ReadOnlySpan
	for _, s := range attempts {
		switch s.SpanKind() {
		case trace.SpanKindClient:
			clientAttempts = append(clientAttempts, s)
		case trace.SpanKindServer:
			handlers = append(handlers, s)
		}
	}
	if len(clientAttempts) != 2 || len(handlers) != 1 {
		t.Fatalf("%d attempt spans and %d handler spans, want 2 and 1", len(clientAttempts), len(handlers))
	}
	for i, want := range []struct {
		node, addr string
		failed     bool
	}{{"dead", "127.0.0.1:1", true}, {"live", "127.0.0.1:2", false}} {
		a := clientAttempts[i]
		if a.Parent().SpanID() != calls[0].SpanContext().SpanID() {
			t.Errorf("attempt %d: parent %v, want the call span", i, a.Parent().SpanID())
		}
		attrs := map[string]string{}
		for _, kv := range a.Attributes() {
			attrs[string(kv.Key)] = kv.Value.Emit()
		}
		if attrs[string(NodeIDKey)] != want.node || attrs[string(NodeAddressKey)] != want.addr {
			t.Errorf("attempt %d: attributes %v, want node %s at %s", i, attrs, want.node, want.addr)
		}
		if failed := a.Status().Code == codes.Error; failed != want.failed {
			t.Errorf("attempt %d: failed %v, want %v", i, failed, want.failed)
		}
		// Exactly one traceparent went out, the attempt's own.
		var tps []string
		for k, v := range got[i].sent {
			if strings.EqualFold(k, "traceparent") {
				tps = append(tps, v)
			}
		}
		if len(tps) != 1 || !strings.Contains(tps[0], a.SpanContext().SpanID().String()) {
			t.Errorf("attempt %d sent traceparent %q, want one naming span %v", i, tps, a.SpanContext().SpanID())
		}
	}
	h := handlers[0]
	if h.Parent().SpanID() != clientAttempts[1].SpanContext().SpanID() || !h.Parent().IsRemote() {
		t.Errorf("handler's parent %v (remote %v), want the second attempt %v", h.Parent().SpanID(), h.Parent().IsRemote(), clientAttempts[1].SpanContext().SpanID())
	}

	// The handler's log line names its trace, span and request.
	var line map[string]any
	if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
		t.Fatalf("log %q: %v", logs.String(), err)
	}
	if line["trace_id"] != h.SpanContext().TraceID().String() || line["span_id"] != h.SpanContext().SpanID().String() || line["request_id"] != "req-1" {
		t.Errorf("log line %v: want trace_id %v, span_id %v, request_id req-1", line, h.SpanContext().TraceID(), h.SpanContext().SpanID())
	}
}

// Without an endpoint nothing is recorded and the metadata goes out as it
// came in: no trace context on the wire.
func TestOffWithoutEndpoint(t *testing.T) {
	tr, err := New(DefaultConfig(), "user")
	if err != nil {
		t.Fatal(err)
	}
	var sent metadata.Metadata
	call := tr.CallWrapper()(func(ctx context.Context, _ *registry.Node, _ client.Request, _ interface{}, _ client.CallOptions) error {
		sent, _ = metadata.FromContext(ctx)
		if trace.SpanFromContext(ctx).IsRecording() {
			t.Error("attempt span records without an endpoint")
		}
		return nil
	})
	ctx := metadata.NewContext(context.Background(), metadata.Metadata{"X-Request-Id": "r"})
	if err := call(ctx, &registry.Node{Id: "n"}, fakeRequest{}, nil, client.CallOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(sent) != 1 || sent["X-Request-Id"] != "r" {
		t.Errorf("sent metadata %v, want only the request id", sent)
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		ok   bool
	}{
		{"default", func(*Config) {}, true},
		{"endpoint", func(c *Config) { c.OTLPEndpoint = "http://127.0.0.1:4318" }, true},
		{"endpoint without scheme", func(c *Config) { c.OTLPEndpoint = "127.0.0.1:4318" }, false},
		{"ratio above 1", func(c *Config) { c.SampleRatio = 1.5 }, false},
		{"negative ratio", func(c *Config) { c.SampleRatio = -0.1 }, false},
		{"json logs", func(c *Config) { c.LogFormat = "json" }, true},
		{"unknown log format", func(c *Config) { c.LogFormat = "xml" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			if err := c.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// Text logs carry the ids too; a line logged without a request's context
// has none.
func TestTextLogger(t *testing.T) {
	tr, _ := recorded(t)
	var logs bytes.Buffer
	log := NewLogger(&logs, "text")
	ctx, span := tr.Tracer().Start(WithRequestID(context.Background(), "abc"), "x")
	log.InfoContext(ctx, "in")
	span.End()
	log.Info("out")
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("log %q", logs.String())
	}
	want := "trace_id=" + span.SpanContext().TraceID().String() + " span_id=" + span.SpanContext().SpanID().String() + " request_id=abc"
	if !strings.HasSuffix(lines[0], want) {
		t.Errorf("line %q: want it to end in %q", lines[0], want)
	}
	if strings.Contains(lines[1], "trace_id") || strings.Contains(lines[1], "request_id") {
		t.Errorf("line without context %q names a trace or request", lines[1])
	}
}

// With an endpoint, spans go to its /v1/traces (a trailing slash or not)
// over OTLP/HTTP, those not yet sent when Shutdown is called included.
func TestExportOnShutdown(t *testing.T) {
	for _, suffix := range []string{"", "/"} {
		paths := make(chan string, 10)
		collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			paths <- r.Method + " " + r.URL.Path + " " + r.Header.Get("Content-Type")
		}))
		tr, err := New(Config{OTLPEndpoint: collector.URL + suffix, SampleRatio: 1, LogFormat: "text"}, "user")
		if err != nil {
			t.Fatal(err)
		}
		_, span := tr.Tracer().Start(context.Background(), "x")
		span.End()
		if err := tr.Shutdown(context.Background()); err != nil {
			t.Fatalf("endpoint %q: %v", collector.URL+suffix, err)
		}
		collector.Close()
		select {
		case got := <-paths:
			if got != "POST /v1/traces application/x-protobuf" {
				t.Errorf("endpoint %q: collector got %q, want POST /v1/traces in protobuf", collector.URL+suffix, got)
			}
		default:
			t.Errorf("endpoint %q: nothing sent by Shutdown", collector.URL+suffix)
		}
	}
}

// A call not sampled costs nothing: with tracing off, under a parent not
// sampled, as a root the ratio did not draw, and within a request not
// sampled (HandlerWrapper), where drawing again would record a trace
// without its root. The context goes on as it came, with the trace context
// its metadata holds, if any (the request's -00), and no other.
func TestUnsampledCallCostsNothing(t *testing.T) {
	off, err := New(DefaultConfig(), "user")
	if err != nil {
		t.Fatal(err)
	}
	newOn := func(ratio float64) *Tracing {
		on, err := New(Config{OTLPEndpoint: "http://127.0.0.1:1", SampleRatio: ratio, LogFormat: "text"}, "user")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = on.Shutdown(context.Background()) })
		return on
	}
	unsampled := trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, Remote: true,
	}))
	inRequest := off.WithUnsampled(metadata.NewContext(context.Background(), metadata.Metadata{
		"X-Request-Id": "r", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
	}), "r", NewUnsampledRoot())
	for _, tc := range []struct {
		name string
		tr   *Tracing
		ctx  context.Context
	}{
		{"off", off, context.Background()},
		{"parent not sampled", newOn(1), unsampled},
		{"root not drawn", newOn(0), context.Background()},
		{"request not sampled", newOn(1), inRequest},
	} {
		var seen context.Context
		c := tc.tr.ClientWrapper()(&fakeClient{call: tc.tr.CallWrapper()(func(ctx context.Context, _ *registry.Node, _ client.Request, _ interface{}, _ client.CallOptions) error {
			seen = ctx
			return nil
		}), nodes: []*registry.Node{{Id: "n"}}})
		allocs := testing.AllocsPerRun(100, func() { _ = c.Call(tc.ctx, fakeRequest{}, nil) })
		if allocs != 0 {
			t.Errorf("%s: %.0f allocations per call, want 0", tc.name, allocs)
		}
		if seen != tc.ctx {
			t.Errorf("%s: the call went on with another context (trace %v)", tc.name, trace.SpanContextFromContext(seen))
		}
	}
}

// A handler reached with a traceparent not sampled (-00), or without one
// (grpcurl, or a call of ours made outside any request and not drawn),
// records no span, though its service samples every root (its own ratio
// plays no part). Its log lines name the trace (its caller's, or a new one
// it is the root of), a span id of its own and the request, and its calls
// carry the trace id and its span id as their parent, -00, once.
func TestHandlerNotSampled(t *testing.T) {
	const traceID, callerSpan = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	const named = "0123456789abcdef" // a request id that names a trace (TraceIDOf)
	for _, tc := range []struct {
		name      string
		in        metadata.Metadata // as our gRPC server hands it over
		wantTrace string            // "": a new one
		// wantTP: the handler's calls carry a traceparent; without one
		// the request id alone names the trace.
		wantTP bool
	}{
		{"no traceparent", metadata.Metadata{"x-request-id": "req-1", "Remote": "127.0.0.1:1"}, "", true},
		{"traceparent -00", metadata.Metadata{"x-request-id": "req-1", "traceparent": "00-" + traceID + "-" + callerSpan + "-00"}, traceID, true},
		{"request id naming the trace", metadata.Metadata{"x-request-id": named, "Remote": "127.0.0.1:1"}, "0000000000000000" + named, false},
		{"traceparent -00 beside a request id naming another", metadata.Metadata{"x-request-id": named, "traceparent": "00-" + traceID + "-" + callerSpan + "-00"}, traceID, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, rec := recorded(t) // every root sampled
			var logs bytes.Buffer
			log := NewLogger(&logs, "json")
			var sent metadata.Metadata
			cl := tr.ClientWrapper()(&fakeClient{call: tr.CallWrapper()(func(ctx context.Context, _ *registry.Node, _ client.Request, _ interface{}, _ client.CallOptions) error {
				sent, _ = metadata.FromContext(ctx)
				return nil
			}), nodes: []*registry.Node{{Id: "n"}}})
			var handled trace.SpanContext
			h := tr.HandlerWrapper()(func(ctx context.Context, _ server.Request, _ interface{}) error {
				handled = trace.SpanContextFromContext(ctx)
				log.InfoContext(ctx, "handled")
				return cl.Call(ctx, fakeRequest{}, nil)
			})
			if err := h(metadata.NewContext(context.Background(), tc.in), fakeServerRequest{}, nil); err != nil {
				t.Fatal(err)
			}
			if spans := rec.Ended(); len(spans) != 0 {
				t.Errorf("%d spans recorded, want none: the first %q", len(spans), spans[0].Name())
			}
			if !handled.IsValid() || handled.IsSampled() || handled.SpanID().String() == callerSpan ||
				(tc.wantTrace != "" && handled.TraceID().String() != tc.wantTrace) {
				t.Fatalf("handler's span context %v: want trace %q (\"\": new), a span id of its own, not sampled", handled, tc.wantTrace)
			}
			var want []string
			if tc.wantTP {
				want = []string{"00-" + handled.TraceID().String() + "-" + handled.SpanID().String() + "-00"}
			}
			var tps []string
			for k, v := range sent {
				if strings.EqualFold(k, "traceparent") {
					tps = append(tps, v)
				}
			}
			id := getFold(tc.in, RequestIDHeader)
			if !slices.Equal(tps, want) || getFold(sent, RequestIDHeader) != id {
				t.Errorf("the handler's call sent %v, want the request id %s and traceparents %q", sent, id, want)
			}
			checkLine(t, logs.Bytes(), handled, id)
		})
	}
}

// checkLine checks that the one JSON log line in logs names sc's trace and
// span and the request id.
func checkLine(t *testing.T, logs []byte, sc trace.SpanContext, requestID string) {
	t.Helper()
	var line map[string]any
	if err := json.Unmarshal(logs, &line); err != nil {
		t.Fatalf("log %q: %v", logs, err)
	}
	if line["trace_id"] != sc.TraceID().String() || line["span_id"] != sc.SpanID().String() || line["request_id"] != requestID {
		t.Errorf("log line %v: want trace_id %v, span_id %v, request_id %s", line, sc.TraceID(), sc.SpanID(), requestID)
	}
}

// A handler's wrapper costs at most the request id it keeps with tracing
// off; with tracing on and the call not sampled, that context (holding the
// ids too) and, unless the request id names the trace, the traceparent its
// calls send: no span, no copy of the metadata.
func TestUnsampledHandlerCost(t *testing.T) {
	off, err := New(DefaultConfig(), "user")
	if err != nil {
		t.Fatal(err)
	}
	on, err := New(Config{OTLPEndpoint: "http://127.0.0.1:1", SampleRatio: 1, LogFormat: "text"}, "user")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = on.Shutdown(context.Background()) })
	for _, tc := range []struct {
		name, id    string
		tr          *Tracing
		traceparent string
		want        float64
	}{
		{"off", "r", off, "", 1},
		{"no traceparent", "r", on, "", 2},
		{"traceparent not sampled", "r", on, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", 2},
		// The request id names the trace (TraceIDOf): no traceparent to write.
		{"request id naming the trace", "0123456789abcdef", on, "", 1},
	} {
		id := tc.id
		var bad string
		h := tc.tr.HandlerWrapper()(func(ctx context.Context, _ server.Request, _ interface{}) error {
			if sc := trace.SpanContextFromContext(ctx); sc.IsValid() == tc.tr.Off() || sc.IsSampled() || RequestID(ctx) != id {
				bad = "wrong context"
			}
			return nil
		})
		md := metadata.Metadata{"x-request-id": id, "Remote": "127.0.0.1:1"}
		if tc.traceparent != "" {
			md["traceparent"] = tc.traceparent
		}
		ctx := metadata.NewContext(context.Background(), md)
		if allocs := testing.AllocsPerRun(100, func() { _ = h(ctx, fakeServerRequest{}, nil) }); allocs > tc.want {
			t.Errorf("%s: %.0f allocations per request, want at most %.0f", tc.name, allocs, tc.want)
		}
		if bad != "" {
			t.Errorf("%s: handler's context: want the request id %s and, tracing on, ids not sampled", tc.name, id)
		}
	}
}

// traceparent is read as W3C Trace Context says; a malformed one is
// ignored (the handler starts a trace of its own).
func TestParseTraceparent(t *testing.T) {
	const tid, sid = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	for _, tc := range []struct {
		in      string
		ok      bool
		sampled bool
	}{
		{"00-" + tid + "-" + sid + "-01", true, true},
		{"00-" + tid + "-" + sid + "-00", true, false},
		{"00-" + tid + "-" + sid + "-09", true, true}, // other flags ignored
		{"01-" + tid + "-" + sid + "-01-more", true, true},
		{"00-" + tid + "-" + sid + "-01-more", false, false}, // 00 is exactly 55
		{"ff-" + tid + "-" + sid + "-01", false, false},
		{"00-" + strings.ToUpper(tid) + "-" + sid + "-01", false, false},
		{"00-00000000000000000000000000000000-" + sid + "-01", false, false},
		{"00-" + tid + "-0000000000000000-01", false, false},
		{"00-" + tid + "-" + sid + "-0x", false, false},
		{"00_" + tid + "-" + sid + "-01", false, false},
		{"", false, false},
	} {
		sc, ok := parseTraceparent(tc.in)
		if ok != tc.ok || sc.IsSampled() != tc.sampled || (ok && (sc.TraceID().String() != tid || sc.SpanID().String() != sid || !sc.IsRemote())) {
			t.Errorf("%q: %v ok %v; want ok %v sampled %v", tc.in, sc, ok, tc.ok, tc.sampled)
		}
		if ok {
			if got := Traceparent(sc); got != "00"+tc.in[2:53]+map[bool]string{true: "01", false: "00"}[tc.sampled] {
				t.Errorf("%q: written back as %q", tc.in, got)
			}
		}
	}
}

// The ids WithUnsampled keeps are what OpenTelemetry reads from the
// context (through contexts made from it too): the log lines', and a span
// started under it would be their child, not sampled. The context key
// caught is OpenTelemetry's own.
func TestUnsampledContext(t *testing.T) {
	tr, rec := recorded(t)
	sc := NewUnsampledRoot()
	ctx, cancel := context.WithCancel(tr.WithUnsampled(context.Background(), "r", sc))
	defer cancel()
	if got := trace.SpanContextFromContext(ctx); !got.Equal(sc) || RequestID(ctx) != "r" {
		t.Fatalf("span context %v, request id %q; want %v and r", got, RequestID(ctx), sc)
	}
	_, span := tr.Tracer().Start(ctx, "child")
	span.End()
	if span.IsRecording() || span.SpanContext().TraceID() != sc.TraceID() || len(rec.Ended()) != 0 {
		t.Errorf("child span %v recording %v: want trace %v, not recorded", span.SpanContext(), span.IsRecording(), sc.TraceID())
	}
	if trace.SpanContextFromContext(WithRequestID(context.Background(), "r")).IsValid() {
		t.Error("a request id's context holds a span context")
	}
}

// The metadata read in place is the one go-micro's FromContext copies (the
// key caught from it is go-micro's own), and none outside metadata.
func TestIncomingMetadata(t *testing.T) {
	tr, _ := recorded(t)
	md := metadata.Metadata{"x-request-id": "r", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	got := tr.incoming(metadata.NewContext(context.Background(), md))
	copied, _ := metadata.FromContext(metadata.NewContext(context.Background(), md))
	if len(got) != len(copied) || getFold(got, "X-Request-Id") != copied["X-Request-Id"] || getFold(got, "traceparent") != copied["Traceparent"] {
		t.Errorf("read in place %v, FromContext %v: want the same", got, copied)
	}
	if got := tr.incoming(context.Background()); got != nil {
		t.Errorf("no metadata: read %v", got)
	}
}

// A request id's context passes every other value, cancellation and
// deadline on from its parent, and a context made from it keeps the id.
func TestRequestIDContext(t *testing.T) {
	type other struct{}
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), other{}, "v"))
	ctx := WithRequestID(parent, "r")
	child, cancelChild := context.WithTimeout(ctx, time.Hour)
	defer cancelChild()
	if RequestID(child) != "r" || child.Value(other{}) != "v" || !inRequest(child) {
		t.Errorf("child: request id %q, other %v, in request %v; want r, v, true", RequestID(child), child.Value(other{}), inRequest(child))
	}
	if RequestID(parent) != "" || inRequest(parent) {
		t.Errorf("parent: request id %q, in request %v; want none", RequestID(parent), inRequest(parent))
	}
	cancel()
	select {
	case <-child.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the parent's cancellation did not reach the child")
	}
}

// A sampled hop (the handler's span, a call's and an attempt's) costs the
// SDK's spans and what crossing the wire needs, no more: names formatted
// once per endpoint, start options made once, the caller's span context
// kept with the request id, the metadata copied without re-casing its keys.
// 139e8b9 took 32 here under -race.
func TestSampledHopCost(t *testing.T) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(dropSpans{}))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr := Provider(tp, nil)
	cl := tr.ClientWrapper()(&fakeClient{call: tr.CallWrapper()(func(context.Context, *registry.Node, client.Request, interface{}, client.CallOptions) error {
		return nil
	}), nodes: []*registry.Node{{Id: "user-1", Address: "127.0.0.1:1"}}})
	h := tr.HandlerWrapper()(func(ctx context.Context, _ server.Request, _ interface{}) error {
		return cl.Call(ctx, fakeRequest{}, nil)
	})
	ctx := metadata.NewContext(context.Background(), metadata.Metadata{
		"x-request-id": "r", "content-type": "application/grpc+json", "user-agent": "grpc-go/1.65.0", ":authority": "127.0.0.1:1", "Remote": "127.0.0.1:2",
		"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	})
	// 3 spans x (span, context, snapshot at End) = 9; the attempt's two
	// attributes 2; the handler's context 1; the attempt's metadata, its
	// context and its traceparent 3 (a map of 7 keys: 1 or 2): 16, 17 under
	// -race.
	if allocs := testing.AllocsPerRun(200, func() { _ = h(ctx, fakeServerRequest{}, nil) }); allocs > 17 {
		t.Errorf("%.0f allocations per sampled hop, want at most 17", allocs)
	}
}

// A sampled call passes its caller's tracestate on with its traceparent,
// and the handler's span keeps it.
func TestTraceStatePassedOn(t *testing.T) {
	tr, rec := recorded(t)
	var sent metadata.Metadata
	cl := tr.ClientWrapper()(&fakeClient{call: tr.CallWrapper()(func(ctx context.Context, _ *registry.Node, _ client.Request, _ interface{}, _ client.CallOptions) error {
		sent = tr.incoming(ctx)
		return nil
	}), nodes: []*registry.Node{{Id: "n"}}})
	h := tr.HandlerWrapper()(func(ctx context.Context, _ server.Request, _ interface{}) error {
		return cl.Call(ctx, fakeRequest{}, nil)
	})
	in := metadata.Metadata{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "vendor=abc,other=1", "Tracestate": "stale"}
	if err := h(metadata.NewContext(context.Background(), in), fakeServerRequest{}, nil); err != nil {
		t.Fatal(err)
	}
	var tps, tss []string
	for k, v := range sent {
		switch strings.ToLower(k) {
		case "traceparent":
			tps = append(tps, v)
		case "tracestate":
			tss = append(tss, v)
		}
	}
	if len(tps) != 1 || !strings.HasPrefix(tps[0], "00-0af7651916cd43dd8448eb211c80319c-") || len(tss) != 1 || tss[0] != "vendor=abc,other=1" {
		t.Errorf("sent traceparent %q, tracestate %q: want one each, the caller's trace and state", tps, tss)
	}
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindServer && s.SpanContext().TraceState().Get("vendor") != "abc" {
			t.Errorf("handler span's tracestate %q", s.SpanContext().TraceState())
		}
	}
}

// Span names are made once per endpoint, up to a bound.
func TestNames(t *testing.T) {
	var n names
	if got := n.get("user", "Users.Get"); got.call != "call user.Users.Get" || got.span != "user.Users.Get" {
		t.Errorf("names %+v", got)
	}
	if allocs := testing.AllocsPerRun(100, func() { n.get("user", "Users.Get") }); allocs != 0 {
		t.Errorf("%.0f allocations for names already made, want 0", allocs)
	}
	for i := range maxNames + 10 {
		n.get("svc", strings.Repeat("x", i))
	}
	if got := len(*n.m.Load()); got != maxNames {
		t.Errorf("%d names kept, want %d", got, maxNames)
	}
	if got := n.get("svc", "beyond"); got.span != "svc.beyond" {
		t.Errorf("past the bound: names %+v", got)
	}
}

// A request id of 16 or 32 hex digits names a trace id; any other, none.
func TestTraceIDOf(t *testing.T) {
	for _, tc := range []struct {
		id, want string // want "": none
	}{
		{"0123456789abcdef", "00000000000000000123456789abcdef"},
		{"0af7651916cd43dd8448eb211c80319c", "0af7651916cd43dd8448eb211c80319c"},
		{"0AF7651916CD43DD8448EB211C80319C", "0af7651916cd43dd8448eb211c80319c"},
		{"0000000000000000", ""},
		{"00000000000000000000000000000000", ""},
		{"0123456789abcdeg", ""},
		{"req-1", ""},
		{"", ""},
		{"0123456789abcdef0", ""},
	} {
		tid, ok := TraceIDOf(tc.id)
		if got := map[bool]string{true: tid.String()}[ok]; got != tc.want {
			t.Errorf("TraceIDOf(%q) = %q, %v; want %q", tc.id, tid, ok, tc.want)
		}
	}
}

// Where a request enters, one not sampled takes the trace id its request
// id names, keeping its span id; a sampled one, or an id naming no trace,
// keeps its trace; outside any request the id is only kept.
func TestWithRootRequestID(t *testing.T) {
	tr, _ := recorded(t)
	root := NewUnsampledRoot()
	const id = "0123456789abcdef"
	ctx := WithRootRequestID(tr.WithUnsampled(context.Background(), "", root), id)
	if sc := trace.SpanContextFromContext(ctx); sc.TraceID().String() != "0000000000000000"+id || sc.SpanID() != root.SpanID() || sc.IsSampled() || RequestID(ctx) != id {
		t.Errorf("not sampled: span context %v, request id %q; want trace 0000000000000000%s, span %v, not sampled", sc, RequestID(ctx), id, root.SpanID())
	}
	if ctx := WithRootRequestID(tr.WithUnsampled(context.Background(), "", root), "req-1"); !trace.SpanContextFromContext(ctx).Equal(root) || RequestID(ctx) != "req-1" {
		t.Errorf("an id naming no trace: span context %v, want %v", trace.SpanContextFromContext(ctx), root)
	}
	sampledCtx, span := tr.Tracer().Start(context.Background(), "root")
	defer span.End()
	if sc := trace.SpanContextFromContext(WithRootRequestID(sampledCtx, id)); !sc.Equal(span.SpanContext()) {
		t.Errorf("sampled: span context %v, want the span's %v", sc, span.SpanContext())
	}
	if ctx := WithRootRequestID(context.Background(), id); trace.SpanContextFromContext(ctx).IsValid() || RequestID(ctx) != id {
		t.Errorf("outside a request: span context %v, request id %q; want none and %s", trace.SpanContextFromContext(ctx), RequestID(ctx), id)
	}
	if n := testing.AllocsPerRun(100, func() { _ = WithRootRequestID(tr.WithUnsampled(context.Background(), "", root), id) }); n > 2 {
		t.Errorf("%.0f allocations, want at most 2 (the two contexts)", n)
	}
}
