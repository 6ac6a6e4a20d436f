package tracing

import (
	"context"
	"strings"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Attributes of an attempt span: which instance the attempt went to.
const (
	NodeIDKey      = attribute.Key("micro.node.id")
	NodeAddressKey = attribute.Key("server.address")
)

// The spans' start options, made once: each conversion to an option
// allocates, and so does each variadic slice passed to Start through its
// interface. The SDK only reads them.
var (
	callOpts    = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal)}
	attemptOpts = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
	handlerOpts = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
)

// ClientWrapper spans each call as the caller sees it: all its attempts,
// fail-over and circuit breaker included. Wrap the whole client with it, so
// a call the breaker refused has its span too.
func (t *Tracing) ClientWrapper() client.Wrapper {
	return func(c client.Client) client.Client { return &tracedClient{Client: c, t: t} }
}

type tracedClient struct {
	client.Client
	t *Tracing
}

func (c *tracedClient) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	if !c.t.traces(ctx) {
		return c.Client.Call(ctx, req, rsp, opts...)
	}
	return c.spanned(ctx, req, rsp, opts)
}

// spanned is Call with its span. Apart from Call so that the span's locals
// are on the stack only for the calls it traces: every frame below a call
// in flight counts in the goroutine's stack (docs/performance.md).
func (c *tracedClient) spanned(ctx context.Context, req client.Request, rsp interface{}, opts []client.CallOption) error {
	ctx, span := c.t.tracer.Start(ctx, c.t.names.get(req.Service(), req.Endpoint()).call, callOpts...)
	defer span.End()
	err := c.Client.Call(ctx, req, rsp, opts...)
	setError(span, err)
	return err
}

// CallWrapper spans each attempt of a sampled call: the instance it went
// to and what it returned, so retries and fail-over show as sibling spans
// under the call. It sends the attempt's trace context in the call's
// metadata (traceparent), so the handler it reaches is the attempt's child.
// An attempt of a call not sampled sends what the request's metadata holds:
// within a request, its -00 traceparent (HandlerWrapper, the gateway);
// outside any, none.
func (t *Tracing) CallWrapper() client.CallWrapper {
	return func(next client.CallFunc) client.CallFunc {
		return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
			if !t.sampled(ctx) { // never a root: ClientWrapper decided
				return next(ctx, node, req, rsp, opts)
			}
			return t.attemptSpanned(ctx, next, node, req, rsp, opts)
		}
	}
}

// attemptSpanned is an attempt with its span, apart from the wrapper for
// the frame size (as tracedClient.spanned).
func (t *Tracing) attemptSpanned(ctx context.Context, next client.CallFunc, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
	ctx, span := t.tracer.Start(ctx, t.names.get(req.Service(), req.Endpoint()).span, attemptOpts...)
	defer span.End()
	// Set once started, not passed as a start option: one allocation
	// where the option took three.
	span.SetAttributes(NodeIDKey.String(node.Id), NodeAddressKey.String(node.Address))
	err := next(t.inject(ctx), node, req, rsp, opts)
	setError(span, err)
	return err
}

// HandlerWrapper spans each handler of a sampled call, as a child of the
// caller's attempt, and keeps the request id from the metadata
// (x-request-id) in the handler's context for its log lines (RequestID).
// List it first among the server's handler wrappers, so its span covers
// them.
//
// A call not sampled (a traceparent ending in -00) starts no span: the
// handler keeps the caller's trace id, draws a span id of its own for its
// log lines and passes both on to its calls, -00 (unsampled). A call
// without a traceparent is not sampled either, the handler being its
// trace's root: our clients send one with every call made for a request,
// so none means a caller that does not trace (grpcurl, say) or a call of
// ours made outside any request whose draw said no; drawing again here
// would sample more than the ratio says.
func (t *Tracing) HandlerWrapper() server.HandlerWrapper {
	return func(next server.HandlerFunc) server.HandlerFunc {
		return func(ctx context.Context, req server.Request, rsp interface{}) error {
			ctx, sampled := t.handlerContext(ctx)
			if !sampled {
				return next(ctx, req, rsp)
			}
			return t.handlerSpanned(ctx, next, req, rsp)
		}
	}
}

// handlerContext is the handler's context: the request id, and when
// tracing, the caller's trace; sampled says whether to span the handler.
// Apart from the wrapper so that its locals are off the stack while the
// handler runs: every frame below a call in flight counts in the
// goroutine's stack (docs/performance.md).
func (t *Tracing) handlerContext(ctx context.Context) (_ context.Context, sampled bool) {
	md := t.incoming(ctx)
	id := getFold(md, RequestIDHeader)
	if t.off {
		if id != "" {
			ctx = WithRequestID(ctx, id)
		}
		return ctx, false
	}
	// Always a request's context when tracing: its calls start no
	// trace of their own (Tracing.traces).
	parent, _ := parseTraceparent(getFold(md, TraceparentHeader))
	if !parent.IsSampled() {
		return t.unsampled(ctx, md, id, parent.TraceID()), false
	}
	if ts := getFold(md, tracestateHeader); ts != "" {
		parent = withTraceState(parent, ts)
	}
	return t.withRequest(ctx, id, parent), true
}

// handlerSpanned is a sampled call's handler with its span, ctx holding
// the caller's trace (handlerContext); apart from the wrapper for the
// frame size, as tracedClient.spanned.
func (t *Tracing) handlerSpanned(ctx context.Context, next server.HandlerFunc, req server.Request, rsp interface{}) error {
	ctx, span := t.tracer.Start(ctx, t.names.get(req.Service(), req.Endpoint()).span, handlerOpts...)
	defer span.End()
	err := next(ctx, req, rsp)
	setError(span, err)
	return err
}

// TraceparentHeader and tracestateHeader name the W3C trace context in
// go-micro metadata (the gateway writes a request's -00 traceparent).
const (
	TraceparentHeader = "traceparent"
	tracestateHeader  = "tracestate"
)

// inject puts the trace context of ctx's span into a copy of ctx's go-micro
// metadata, replacing the one a handler's context brought from its caller.
// The copy keeps the keys as they are: go-micro's FromContext re-cases
// every key (an allocation each) and our client lower-cases them anyway.
func (t *Tracing) inject(ctx context.Context) context.Context {
	in, _ := ctx.Value(t.mdKey).(metadata.Metadata)
	md := make(metadata.Metadata, len(in)+1)
	for k, v := range in {
		if !strings.EqualFold(k, TraceparentHeader) && !strings.EqualFold(k, tracestateHeader) {
			md[k] = v
		}
	}
	sc := trace.SpanContextFromContext(ctx)
	md[TraceparentHeader] = Traceparent(sc)
	if sc.TraceState().Len() > 0 {
		md[tracestateHeader] = sc.TraceState().String()
	}
	return metadata.NewContext(ctx, md)
}

func setError(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
}

// setFold sets key in md, removing the key in any other case. Keys are
// compared without case: a gRPC server hands them over in lower case,
// go-micro's metadata.Get looks for the key as given and in Title case,
// and two keys differing only in case would reach gRPC as one header with
// two values.
func setFold(md metadata.Metadata, key, value string) {
	for k := range md {
		if strings.EqualFold(k, key) {
			delete(md, k)
		}
	}
	md[strings.ToLower(key)] = value
}

// getFold is md's value for key in any case.
func getFold(md metadata.Metadata, key string) string {
	if v, ok := md[key]; ok {
		return v
	}
	for k, v := range md {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}

// incoming is the go-micro metadata in ctx, read in place: handlers must
// not change it. metadata.FromContext copies the map and re-cases every
// key (3 allocations with two keys) on every request, for two values read.
func (t *Tracing) incoming(ctx context.Context) metadata.Metadata {
	md, _ := ctx.Value(t.mdKey).(metadata.Metadata)
	return md
}

// MetadataKey is go-micro's (unexported) context key of the metadata,
// caught as its FromContext asks a context for it, so that a hot path can
// read the metadata in place: FromContext copies the map and re-cases every
// key. TestIncomingMetadata checks it still reads what FromContext does.
func MetadataKey() any {
	var p keyProbe
	metadata.FromContext(&p)
	return p.key
}

// keyProbe is a context that keeps the key it was asked for.
type keyProbe struct {
	context.Context
	key any
}

func (p *keyProbe) Value(key any) any {
	p.key = key
	return nil
}
