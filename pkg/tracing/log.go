package tracing

import (
	"context"
	"io"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
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

// requestCtx holds a request id in one allocation, where context.WithValue
// takes two (the string boxed in an interface): one per request and hop.
type requestCtx struct {
	context.Context
	id string
}

func (c *requestCtx) Value(key any) any {
	if key == (requestIDKey{}) {
		return c
	}
	return c.Context.Value(key)
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
