// Package tracing gives a service OpenTelemetry traces and logs that name
// them: a span for each call a client makes, for each attempt of it (the
// instance it went to as attributes) and for each handler, with the W3C
// trace context carried in go-micro metadata from service to service, and
// exported over OTLP/HTTP. Log lines written with a request's context carry
// its trace id, span id and request id (NewLogger).
//
// go-micro's opentelemetry wrapper plugin (go-micro/plugins/v4/wrapper/
// trace/opentelemetry v1.2.0) is not used: it takes the propagator from
// otel's process-wide global (a no-op unless set), re-parents a client's
// span on the trace context in the incoming metadata rather than on the
// span in the context, and its attempt span does not say which instance it
// went to.
package tracing

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Config is what the flags set.
type Config struct {
	// OTLPEndpoint is the OTLP/HTTP collector's base URL, such as
	// http://127.0.0.1:4318 (traces go to /v1/traces); empty: no traces
	// are recorded or sent.
	OTLPEndpoint string
	// SampleRatio is the share of requests traced where a trace starts (at
	// the gateway, or a call made outside any request); a service called
	// follows its caller: traced with a sampled traceparent (-01), not with
	// one not sampled (-00) or none.
	SampleRatio float64
	LogFormat   string // "text" or "json"
}

// DefaultConfig traces one request in ten when an endpoint is given: enough
// to find slow or failing paths under load, at a small cost.
func DefaultConfig() Config { return Config{SampleRatio: 0.1, LogFormat: "text"} }

// Flags declares --otlp_endpoint, --trace_sample_ratio and --log_format.
func (c *Config) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.OTLPEndpoint, "otlp_endpoint", c.OTLPEndpoint, "OTLP/HTTP endpoint to send traces to, such as http://127.0.0.1:4318; empty: no tracing")
	fs.Float64Var(&c.SampleRatio, "trace_sample_ratio", c.SampleRatio, "share of requests traced where they enter (the gateway, or a call made outside any request), 0 to 1; the services called follow it")
	fs.StringVar(&c.LogFormat, "log_format", c.LogFormat, "log format: text or json")
}

// Validate rejects an endpoint that is not an http(s) URL with a host, a
// ratio outside [0, 1] and an unknown log format.
func (c Config) Validate() error {
	if c.OTLPEndpoint != "" {
		u, err := url.Parse(c.OTLPEndpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("otlp endpoint %q: want http(s)://host:port", c.OTLPEndpoint)
		}
	}
	if !(c.SampleRatio >= 0 && c.SampleRatio <= 1) { // NaN fails too
		return fmt.Errorf("trace sample ratio %v: must be between 0 and 1", c.SampleRatio)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("log format %q: want text or json", c.LogFormat)
	}
	return nil
}

// Tracing is one service's tracer.
type Tracing struct {
	tracer   trace.Tracer
	shutdown func(context.Context) error
	// off: no endpoint, so spans are no-ops; the wrappers then start none
	// (a no-op span still costs allocations on every call).
	off bool
	// ratio is the share of roots sampled, drawn here before any span is
	// started (SampleRoot): a root not sampled then costs nothing, where
	// the SDK's ratio sampler needs a span started to decide.
	ratio   float64
	names   names // the spans' names, per endpoint
	mdKey   any   // go-micro's context key of the metadata (incoming)
	spanKey any   // OpenTelemetry's context key of the current span
}

// instrumentation names this package as the spans' source.
const instrumentation = "github.com/example/micro-starter/pkg/tracing"

// New sets up tracing for the service named service. Without an endpoint
// it records nothing: spans are no-ops, costing next to nothing, and no
// exporter runs. With one, sampled spans are batched and sent in the
// background; Shutdown sends what is left.
func New(c Config, service string) (*Tracing, error) {
	if c.OTLPEndpoint == "" {
		t := Provider(noop.NewTracerProvider(), nil)
		t.off = true
		return t, nil
	}
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(strings.TrimRight(c.OTLPEndpoint, "/")+"/v1/traces"))
	if err != nil {
		return nil, fmt.Errorf("otlp exporter: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		// The ratio is applied by SampleRoot, before a root span is started;
		// below a parent, its decision.
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(service))),
	)
	t := Provider(tp, tp.Shutdown)
	t.ratio = c.SampleRatio
	return t, nil
}

// Provider uses tp (tests give an SDK provider with an in-memory
// exporter); shutdown, if not nil, is what Shutdown calls.
func Provider(tp trace.TracerProvider, shutdown func(context.Context) error) *Tracing {
	return &Tracing{
		tracer:   tp.Tracer(instrumentation),
		shutdown: shutdown,
		ratio:    1, // tp's sampler decides
		mdKey:    MetadataKey(),
		spanKey:  spanKey(),
	}
}

// Tracer starts spans.
func (t *Tracing) Tracer() trace.Tracer { return t.tracer }

// Off reports that no span is ever recorded (no endpoint): a span of one's
// own need not be started.
func (t *Tracing) Off() bool { return t.off }

// SampleRoot draws whether a trace starting here, at a request's root, is
// sampled (--trace_sample_ratio). Only roots draw: a span below a parent
// follows the parent's decision.
func (t *Tracing) SampleRoot() bool {
	return !t.off && (t.ratio >= 1 || rand.Float64() < t.ratio)
}

// sampled reports that ctx carries a sampled trace: spans started under it
// are recorded.
func (t *Tracing) sampled(ctx context.Context) bool {
	return !t.off && trace.SpanContextFromContext(ctx).IsSampled()
}

// traces reports whether a call made with ctx is spanned: within a sampled
// trace, or as a new trace's root, drawn, when ctx is in no trace and in no
// request (a request not sampled carries ids not sampled: HandlerWrapper).
func (t *Tracing) traces(ctx context.Context) bool {
	if t.off {
		return false
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		return sc.IsSampled()
	}
	return !inRequest(ctx) && t.SampleRoot()
}

// Shutdown sends the spans not yet sent, within ctx's deadline.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t.shutdown == nil {
		return nil
	}
	if err := t.shutdown(ctx); err != nil {
		return fmt.Errorf("tracing shutdown: %w", err)
	}
	return nil
}
