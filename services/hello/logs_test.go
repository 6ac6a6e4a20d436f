package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
	"go.opentelemetry.io/otel/trace"

	"github.com/example/micro-starter/pkg/service"
	"github.com/example/micro-starter/pkg/service/servicetest"
	"github.com/example/micro-starter/pkg/tracing"
	hellopb "github.com/example/micro-starter/services/hello/proto"
)

// TestHandlerLogCarriesIDs: served as main serves it, with tracing on and
// JSON logs, Greet's line about a failed user lookup carries the trace id
// its caller sent, the span id of its own handler span, and the request id
// from the call's metadata (x-request-id, in lower case over gRPC).
func TestHandlerLogCarriesIDs(t *testing.T) {
	collector := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(collector.Close)
	cfg := service.DefaultConfig("hello")
	cfg.Registry.Name = "memory"
	cfg.ServerAddress = "127.0.0.1:0"
	cfg.Drain = 0
	cfg.Tracing.OTLPEndpoint = collector.URL
	var logs servicetest.Log
	log := tracing.NewLogger(&logs, "json")
	svc, err := service.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakeUsers{}
	fake.answer(failWith(merrors.InternalServerError("user.Get", "disk on fire")))
	h := newHandler(nil, "hello-1", log)
	h.users = fake
	if err := hellopb.RegisterHelloServiceHandler(svc.Server(), h); err != nil {
		t.Fatal(err)
	}
	servicetest.MustRun(t, svc)

	caller := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:     trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled,
	})
	ctx := trace.ContextWithSpanContext(metadata.NewContext(context.Background(), metadata.Metadata{"X-Request-Id": "req-42"}), caller)
	if _, err := hellopb.NewHelloService("hello", svc.Client()).Greet(ctx, &hellopb.GreetRequest{UserId: "ada"}); err == nil {
		t.Fatal("Greet: no error, want the user service's")
	}
	var line map[string]any
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "user lookup failed") {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if line == nil {
		t.Fatalf("no line about the failed lookup in\n%s", logs.String())
	}
	spanID, _ := line["span_id"].(string)
	if line["trace_id"] != caller.TraceID().String() || line["request_id"] != "req-42" || len(spanID) != 16 || spanID == caller.SpanID().String() {
		t.Errorf("log line %v: want trace_id %s, request_id req-42 and the handler's own span_id", line, caller.TraceID())
	}
}
