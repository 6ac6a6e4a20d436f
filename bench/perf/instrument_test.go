package perf

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"go-micro.dev/v4/metadata"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/pkg/service"
	"github.com/example/micro-starter/pkg/tracing"
	userpb "github.com/example/micro-starter/services/user/proto"
)

// instrumentations are the variants BenchmarkInstrumentation compares:
// metrics on or off (--metrics_address off), and traces exported at a
// sample ratio or not at all (no --otlp_endpoint, ratio < 0).
// The -req variants call as a handler does for a request (hello calling
// user): with its request id, and with tracing its ids not sampled (a -00
// traceparent), where the others call outside any request.
var instrumentations = []struct {
	name      string
	metrics   bool
	ratio     float64
	inRequest bool
}{
	{"shipped", true, 0.1, false}, // the default --trace_sample_ratio, exported
	{"nometrics", false, 0.1, false},
	{"notracing", true, -1, false},
	{"trace100", true, 1, false},
	{"none", false, -1, false},
	{"unsampled-req", true, 0.1, true},
	{"notracing-req", true, -1, true},
}

// requestContext is the context a handler serving a request not sampled
// calls with: the request id, and with tracing on its ids, -00, in the
// metadata the client sends (as tracing.HandlerWrapper leaves them).
func requestContext(svc *service.Service, tracingOn bool) context.Context {
	md := metadata.Metadata{tracing.RequestIDHeader: "0123456789abcdef"}
	if !tracingOn {
		return tracing.WithRequestID(metadata.NewContext(context.Background(), md), "0123456789abcdef")
	}
	sc := tracing.NewUnsampledRoot()
	md["traceparent"] = tracing.Traceparent(sc)
	return svc.Tracing().WithUnsampled(metadata.NewContext(context.Background(), md), "0123456789abcdef", sc)
}

// otlpSink answers OTLP/HTTP exports as a collector does, discarding them.
func otlpSink(tb testing.TB) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	tb.Cleanup(srv.Close)
	return srv.URL
}

// startInstrumented runs a user service built by pkg/service, as every
// service is, with the given metrics and tracing, on its own memory
// registry; calls through its own client reach its own server, so that one
// call passes the client's chain and the server's chain of one hop.
func startInstrumented(tb testing.TB, metrics bool, ratio float64, otlp string) *service.Service {
	tb.Helper()
	cfg := service.DefaultConfig("user")
	cfg.Registry.Name = "memory"
	cfg.ServerAddress = "127.0.0.1:0"
	cfg.Drain = 0
	if !metrics {
		cfg.MetricsAddress = service.MetricsOff
	}
	if ratio >= 0 {
		cfg.Tracing.OTLPEndpoint, cfg.Tracing.SampleRatio = otlp, ratio
	}
	svc, err := service.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	if err := userpb.RegisterUserServiceHandler(svc.Server(), &users{instance: "user-bench"}); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Error(err)
		}
	})
	poll.Eventually(tb, 10*time.Second, func() error {
		svcs, err := svc.Registry().GetService("user")
		if err != nil {
			return err
		}
		if len(svcs) == 0 || len(svcs[0].Nodes) == 0 {
			return errors.New("not registered yet")
		}
		return nil
	})
	return svc
}

// BenchmarkInstrumentation is what metrics and tracing cost one hop: a
// user.Get from the service's client to its server (both chains as
// pkg/service builds them), 16 concurrent callers per CPU, for each
// variant of instrumentations. cpu-us/op is the whole process's CPU per
// call, the OTLP sink's included; allocs/op both sides' allocations.
//
// The whole process's CPU includes what earlier variants left: garbage,
// services stopping between -count repetitions, spans still being
// exported. Compare CPU from one process per variant, alternated
// (-bench 'instr=shipped$', then 'instr=notracing$', ...). Seen
// 2026-11-30: with -count 20 in one process, shipped (run first) cost 41 %
// more CPU per call than notracing both before and after b525544, where
// separate processes measured 14 % and 3 %.
func BenchmarkInstrumentation(b *testing.B) {
	otlp := otlpSink(b)
	for _, in := range instrumentations {
		svc := startInstrumented(b, in.metrics, in.ratio, otlp)
		users := userpb.NewUserService("user", svc.Client())
		ctx := context.Background()
		if in.inRequest {
			ctx = requestContext(svc, in.ratio >= 0)
		}
		for range 10 { // warm the connection pool and the selector cache
			if _, err := users.Get(context.Background(), &userpb.GetRequest{Id: "ada"}); err != nil {
				b.Fatal(err)
			}
		}
		b.Run("instr="+in.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(16)
			runtime.GC() // not this variant's garbage
			cpu0 := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := users.Get(ctx, &userpb.GetRequest{Id: "ada"}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-us/op")
		})
	}
}
