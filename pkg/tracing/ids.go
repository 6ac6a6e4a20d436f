package tracing

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"

	"go-micro.dev/v4/metadata"
	"go.opentelemetry.io/otel/trace"
)

// A request not sampled has trace and span ids all the same, for its log
// lines, but no span: the ids are drawn here, the W3C trace context read
// and written here, without the SDK (a non-recording span on every hop,
// as the SDK makes one, cost ~20 allocations per hop).

// newTraceID and newSpanID draw from math/rand/v2's top-level functions,
// as the SDK's own ID generator does: the runtime's per-thread generator,
// no lock, no allocation. The ids name a trace; they guard nothing.
func newTraceID() trace.TraceID {
	for {
		var id trace.TraceID
		binary.NativeEndian.PutUint64(id[:8], rand.Uint64())
		binary.NativeEndian.PutUint64(id[8:], rand.Uint64())
		if id.IsValid() {
			return id
		}
	}
}

func newSpanID() trace.SpanID {
	for {
		var id trace.SpanID
		binary.NativeEndian.PutUint64(id[:], rand.Uint64())
		if id.IsValid() {
			return id
		}
	}
}

// NewUnsampledRoot is the span context of a request not sampled where it
// enters (the gateway): a new trace, flags 00.
func NewUnsampledRoot() trace.SpanContext {
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: newTraceID(), SpanID: newSpanID()})
}

// parseTraceparent reads a W3C traceparent ("00-<trace id>-<parent id>-
// <flags>"); ok is false for anything else, which a receiver ignores.
// Versions above 00 are read as 00, as the spec asks, and ff is invalid.
func parseTraceparent(s string) (sc trace.SpanContext, ok bool) {
	if len(s) < 55 || (len(s) > 55 && s[55] != '-') || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return trace.SpanContext{}, false
	}
	var ver, flags [1]byte
	if _, err := hex.Decode(ver[:], []byte{s[0], s[1]}); err != nil || ver[0] == 0xff || (ver[0] == 0 && len(s) != 55) {
		return trace.SpanContext{}, false
	}
	if _, err := hex.Decode(flags[:], []byte{s[53], s[54]}); err != nil {
		return trace.SpanContext{}, false
	}
	tid, err := trace.TraceIDFromHex(s[3:35])
	if err != nil {
		return trace.SpanContext{}, false
	}
	sid, err := trace.SpanIDFromHex(s[36:52])
	if err != nil {
		return trace.SpanContext{}, false
	}
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(flags[0]) & trace.FlagsSampled, Remote: true,
	}), true
}

// Traceparent is sc as a W3C traceparent, version 00.
func Traceparent(sc trace.SpanContext) string {
	var b [55]byte
	b[0], b[1], b[2] = '0', '0', '-'
	tid, sid := sc.TraceID(), sc.SpanID()
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{byte(sc.TraceFlags())})
	return string(b[:])
}

// TraceIDOf is the trace id that the request id id names: its 32 hex
// digits, or its 16 after 16 zeros (a 64-bit id padded as W3C trace
// context says); ok is false for any other id, or an all-zero one. A
// request not sampled takes it as its trace id (WithRootRequestID, the
// gateway), so that its calls need carry only the request id: every
// service called derives the same trace id from it (HandlerWrapper),
// where a -00 traceparent beside it made a second value, new on every
// call, for gRPC to code and every hop to parse.
func TraceIDOf(id string) (tid trace.TraceID, ok bool) {
	switch len(id) {
	case 32:
		_, err := hex.Decode(tid[:], []byte(id))
		ok = err == nil
	case 16:
		_, err := hex.Decode(tid[8:], []byte(id))
		ok = err == nil
	}
	return tid, ok && tid.IsValid()
}

// unsampled is ctx for a handler whose request is not sampled: in the
// trace of tid (its caller's), or else the trace its request id names
// (TraceIDOf), or else a new one whose root the handler is; under a span
// id of its own, which the calls it makes carry as their parent (flags 00)
// when the trace is not the request id's. That traceparent is written into
// the incoming metadata, in place: go-micro's client sends that metadata
// on with every call made with ctx, so this costs one string per request
// where a copy of the metadata per call would cost several allocations.
// The metadata is this request's alone (the server makes it per request)
// and is written before the handler runs. A trace named by the request
// id needs none: the request id goes on with every call.
func (t *Tracing) unsampled(ctx context.Context, md metadata.Metadata, id string, tid trace.TraceID) context.Context {
	pass := true // the calls made need a traceparent to share the trace
	if !tid.IsValid() {
		var ok bool
		if tid, ok = TraceIDOf(id); ok {
			pass = false
		} else {
			tid = newTraceID()
		}
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: newSpanID()})
	switch {
	case !pass:
	case md == nil:
		ctx = metadata.NewContext(ctx, metadata.Metadata{TraceparentHeader: Traceparent(sc)})
	default:
		setFold(md, TraceparentHeader, Traceparent(sc))
	}
	return t.withRequest(ctx, id, sc)
}

// withTraceState is sc with the W3C tracestate s, which a sampled call
// passes on; one that does not parse is dropped, as the spec asks.
func withTraceState(sc trace.SpanContext, s string) trace.SpanContext {
	ts, err := trace.ParseTraceState(s)
	if err != nil {
		return sc
	}
	return sc.WithTraceState(ts)
}
