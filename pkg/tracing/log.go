package tracing

import (
	"context"
	"io"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// RequestIDHeader names the request id in go-micro metadata: the gateway
// makes one per HTTP request and every call made for it carries it.
const RequestIDHeader = "X-Request-Id"

type requestIDKey struct{}

// WithRequestID keeps id in ctx for the log lines written with it, and
// marks ctx as a request's: a call made with it starts no trace of its own,
// the request's root having decided (id may be "": a caller sent none).
func WithRequestID(ctx context.Context, id string) context.Context {
	return &requestCtx{Context: ctx, id: id}
}

// WithUnsampled is WithRequestID for a request not sampled: ctx also
// carries sc (flags 00), a trace and span id of the request's own that no
// span records, so that its log lines name them (ContextHandler) and its
// calls pass the trace id on. A span started under it, were one started,
// would be sc's child.
func (t *Tracing) WithUnsampled(ctx context.Context, id string, sc trace.SpanContext) context.Context {
	return t.withRequest(ctx, id, sc)
}

// WithRootRequestID is WithRequestID where a request enters and its id is
// made (the gateway), under WithUnsampled: a request not sampled takes the
// trace id its request id names (TraceIDOf), keeping its span id, so that
// the calls made for it carry the request id alone (not a -00 traceparent
// too) and the services called still log the same trace id. A sampled
// request, or an id that names no trace, keeps the trace it is in.
func WithRootRequestID(ctx context.Context, id string) context.Context {
	r, ok := ctx.Value(requestIDKey{}).(*requestCtx)
	if !ok {
		return WithRequestID(ctx, id)
	}
	sc := r.span.sc
	tid, named := TraceIDOf(id)
	if !sc.IsValid() || sc.IsSampled() || sc.IsRemote() || !named {
		return WithRequestID(ctx, id)
	}
	sc = trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sc.SpanID()})
	return &requestCtx{Context: ctx, id: id, span: idSpan{sc: sc}, spanKey: r.spanKey}
}

// withRequest keeps the request id and sc, the span context the request is
// in (its own not sampled, or a sampled caller's: HandlerWrapper).
func (t *Tracing) withRequest(ctx context.Context, id string, sc trace.SpanContext) context.Context {
	return &requestCtx{Context: ctx, id: id, span: idSpan{sc: sc}, spanKey: t.spanKey}
}

// requestCtx holds a request id and a span context in one allocation, per
// request and hop, where context.WithValue takes two for the id (the
// string boxed in an interface) and trace.ContextWithSpanContext (or the
// propagator's Extract) two more.
type requestCtx struct {
	context.Context
	id      string
	span    idSpan
	spanKey any // OpenTelemetry's context key of the span: spanKey()
}

func (c *requestCtx) Value(key any) any {
	switch {
	case key == (requestIDKey{}):
		return c
	case key == c.spanKey && c.span.sc.IsValid():
		return &c.span // held in c: no allocation
	}
	return c.Context.Value(key)
}

// idSpan is a span context as a span: ids only, it records nothing (a
// request not sampled, or a sampled caller's span, remote).
type idSpan struct {
	noop.Span
	sc trace.SpanContext
}

func (s *idSpan) SpanContext() trace.SpanContext { return s.sc }

// spanKey is OpenTelemetry's (unexported) context key of the current span,
// caught as trace.SpanFromContext asks a context for it, as metadataKey
// catches go-micro's. TestUnsampledContext checks that
// trace.SpanContextFromContext reads what WithUnsampled keeps.
func spanKey() any {
	var p keyProbe
	trace.SpanFromContext(&p)
	return p.key
}

// RequestID is the id WithRequestID kept in ctx, or "".
func RequestID(ctx context.Context) string {
	if r, ok := ctx.Value(requestIDKey{}).(*requestCtx); ok {
		return r.id
	}
	return ""
}

// inRequest reports that ctx went through WithRequestID.
func inRequest(ctx context.Context) bool {
	_, ok := ctx.Value(requestIDKey{}).(*requestCtx)
	return ok
}

// NewLogger writes to w in format ("json" or anything else: text), and
// adds to every line logged with a context (slog's *Context methods, or
// Log) the trace id, span id and request id that context carries.
func NewLogger(w io.Writer, format string) *slog.Logger {
	var h slog.Handler = slog.NewTextHandler(w, nil)
	if format == "json" {
		h = slog.NewJSONHandler(w, nil)
	}
	return slog.New(ContextHandler{h})
}

// ContextHandler adds trace_id, span_id and request_id from the context of
// each record to it, when the context has them.
type ContextHandler struct{ slog.Handler }

func (h ContextHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h ContextHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return ContextHandler{h.Handler.WithAttrs(as)}
}

func (h ContextHandler) WithGroup(name string) slog.Handler {
	return ContextHandler{h.Handler.WithGroup(name)}
}
