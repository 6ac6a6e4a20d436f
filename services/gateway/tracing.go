package main

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/example/micro-starter/pkg/tracing"
)

// traced spans each HTTP request sampled (--trace_sample_ratio): the root
// of the trace of every call made for it. A request not sampled gets no
// span but a trace id and span id of its own (tracing.NewUnsampledRoot),
// the trace id then being the one its request id names (withRequestID):
// its calls carry the request id alone, from which the services called
// derive and log the same trace id, recording nothing either
// (tracing.HandlerWrapper). A trace context sent by the client is
// ignored, as its request id is (requestid.go): the
// gateway's callers are anonymous, and a parent they chose would let them
// decide what is sampled. The API names the span after its route
// (API.Handler); the request id is an attribute, so a 5xx answer's id finds
// its trace.
func traced(tr *tracing.Tracing, next http.Handler) http.Handler {
	if tr.Off() { // no span would be recorded: start none
		return next
	}
	// Made once: each option, and the slice passing them, allocates.
	opts := []trace.SpanStartOption{trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindServer)}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !tr.SampleRoot() {
			next.ServeHTTP(w, r.WithContext(tr.WithUnsampled(r.Context(), "", tracing.NewUnsampledRoot())))
			return
		}
		ctx, span := tr.Tracer().Start(r.Context(), r.Method, opts...)
		defer span.End()
		if !span.IsRecording() { // the provider's sampler said no (tests)
			next.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r.WithContext(ctx))
		// All at once, when known: one slice and one growth of the span's.
		span.SetAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path),
			attribute.Int("http.response.status_code", sw.status), attribute.String("request_id", w.Header().Get(requestIDHeader)))
		if sw.status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.status))
		}
	})
}

// statusWriter keeps the status written through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
