package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	merrors "go-micro.dev/v4/errors"

	"github.com/example/micro-starter/pkg/service"
	"github.com/example/micro-starter/pkg/service/servicetest"
	"github.com/example/micro-starter/pkg/tracing"
	hellopb "github.com/example/micro-starter/services/hello/proto"
	userpb "github.com/example/micro-starter/services/user/proto"
)

// jsonLines are the JSON log lines written to l so far.
func jsonLines(tb testing.TB, l *servicetest.Log) []map[string]any {
	tb.Helper()
	var out []map[string]any
	for _, s := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if s == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			tb.Fatalf("log line %q: %v", s, err)
		}
		out = append(out, m)
	}
	return out
}

// collector counts the OTLP exports it is sent.
func collector(tb testing.TB) (url string, exports *atomic.Int32) {
	exports = new(atomic.Int32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		exports.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	tb.Cleanup(srv.Close)
	return srv.URL, exports
}

// chainHop is one service of the chain: built by pkg/service, as every
// service is, tracing to a collector of its own at ratio, its handlers
// logging to log.
type chainHop struct {
	svc     *service.Service
	log     *slog.Logger
	out     *servicetest.Log
	exports *atomic.Int32
}

func newHop(tb testing.TB, name string, ratio float64) *chainHop {
	tb.Helper()
	url, exports := collector(tb)
	cfg := service.DefaultConfig(name)
	cfg.Registry.Name = "memory"
	cfg.ServerAddress = "127.0.0.1:0"
	cfg.Drain = 0
	cfg.MetricsAddress = service.MetricsOff
	cfg.Tracing.OTLPEndpoint, cfg.Tracing.SampleRatio = url, ratio
	svc, err := service.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	out := &servicetest.Log{}
	return &chainHop{svc: svc, log: tracing.NewLogger(out, "json"), out: out, exports: exports}
}

// knows registers callee's instance in h's (memory) registry.
func (h *chainHop) knows(tb testing.TB, callee *chainHop, name string) {
	tb.Helper()
	svcs, err := callee.svc.Registry().GetService(name)
	if err != nil || len(svcs) == 0 {
		tb.Fatalf("%s not registered: %v", name, err)
	}
	if err := h.svc.Registry().Register(svcs[0]); err != nil {
		tb.Fatal(err)
	}
}

// chainUser logs and fails, so that every hop logs the request.
type chainUser struct{ log *slog.Logger }

func (u chainUser) Get(ctx context.Context, req *userpb.GetRequest, _ *userpb.GetResponse) error {
	u.log.InfoContext(ctx, "user get", "id", req.Id)
	return merrors.InternalServerError("user", "boom")
}

func (chainUser) List(context.Context, *userpb.ListRequest, *userpb.ListResponse) error { return nil }

// chainHello logs and asks user, as hello does.
type chainHello struct {
	log   *slog.Logger
	users userpb.UserService
}

func (h chainHello) Greet(ctx context.Context, req *hellopb.GreetRequest, rsp *hellopb.GreetResponse) error {
	h.log.InfoContext(ctx, "greet", "user_id", req.UserId)
	if _, err := h.users.Get(ctx, &userpb.GetRequest{Id: req.UserId}); err != nil {
		return merrors.InternalServerError("hello", "user: %v", err)
	}
	return nil
}

// startChain runs gateway -> hello -> user in this process, each tracing
// at its ratio, and serves one GET /hello?user_id=ada (a 502: user fails,
// so each hop logs). It returns the hops once every tracer has sent what
// it recorded, and the request id.
func startChain(t *testing.T, gatewayRatio, calleeRatio float64) (gw, hello, user *chainHop, requestID string) {
	gw, hello, user = newHop(t, "gateway", gatewayRatio), newHop(t, "hello", calleeRatio), newHop(t, "user", calleeRatio)
	if err := userpb.RegisterUserServiceHandler(user.svc.Server(), chainUser{log: user.log}); err != nil {
		t.Fatal(err)
	}
	if err := hellopb.RegisterHelloServiceHandler(hello.svc.Server(), chainHello{log: hello.log, users: userpb.NewUserService("user", hello.svc.Client())}); err != nil {
		t.Fatal(err)
	}
	servicetest.MustRun(t, user.svc)
	servicetest.MustRun(t, hello.svc)
	hello.knows(t, user, "user")
	gw.knows(t, hello, "hello")

	api := &API{
		hello: hellopb.NewHelloService("hello", gw.svc.Client()),
		users: userpb.NewUserService("user", gw.svc.Client()),
		ready: func(context.Context) error { return nil },
		log:   gw.log,
	}
	w := httptest.NewRecorder()
	traced(gw.svc.Tracing(), api.Handler()).ServeHTTP(w, httptest.NewRequest("GET", "/hello?user_id=ada", nil))
	if w.Code != http.StatusBadGateway {
		t.Fatalf("status %d, want 502 (user fails): %s", w.Code, w.Body)
	}
	for _, h := range []*chainHop{gw, hello, user} {
		if err := h.svc.Tracing().Shutdown(context.Background()); err != nil { // sends what is left
			t.Fatal(err)
		}
	}
	return gw, hello, user, w.Header().Get(requestIDHeader)
}

// Every log line written for a request names its trace, its span and the
// request, whether the request is sampled or not, in every service: one
// trace id through gateway -> hello -> user, each service its own span
// id.
func checkChainLogs(t *testing.T, requestID string, hops map[string]*chainHop) (traceID string) {
	t.Helper()
	spanIDs := map[string]string{}
	for name, h := range hops {
		lines := jsonLines(t, h.out)
		if len(lines) == 0 {
			t.Fatalf("%s logged nothing", name)
		}
		for _, l := range lines {
			tid, _ := l["trace_id"].(string)
			sid, _ := l["span_id"].(string)
			if len(tid) != 32 || len(sid) != 16 || l["request_id"] != requestID {
				t.Errorf("%s's line %v: want trace_id, span_id and request_id %s", name, l, requestID)
				continue
			}
			if traceID == "" {
				traceID = tid
			}
			if tid != traceID {
				t.Errorf("%s's line in trace %s, want the request's %s", name, tid, traceID)
			}
			if other, ok := spanIDs[sid]; ok && other != name {
				t.Errorf("%s and %s log the same span id %s", name, other, sid)
			}
			spanIDs[sid] = name
		}
	}
	return traceID
}

// A request the gateway does not sample: every service logs its lines
// with the same trace id, a span id of its own and the request id, and
// none of them exports anything, though hello and user sample every trace
// they start (a -00 traceparent is their caller's decision).
func TestChainUnsampledLogsIDs(t *testing.T) {
	gw, hello, user, id := startChain(t, 0, 1)
	checkChainLogs(t, id, map[string]*chainHop{"gateway": gw, "hello": hello, "user": user})
	for name, h := range map[string]*chainHop{"gateway": gw, "hello": hello, "user": user} {
		if n := h.exports.Load(); n != 0 {
			t.Errorf("%s exported %d times, want never", name, n)
		}
	}
}

// A request the gateway samples is sampled in hello and user too, though
// they would sample no trace of their own: each exports its spans, and
// the log lines name the trace.
func TestChainSampledCalleesSample(t *testing.T) {
	gw, hello, user, id := startChain(t, 1, 0)
	checkChainLogs(t, id, map[string]*chainHop{"gateway": gw, "hello": hello, "user": user})
	for name, h := range map[string]*chainHop{"gateway": gw, "hello": hello, "user": user} {
		if n := h.exports.Load(); n == 0 {
			t.Errorf("%s exported nothing, want its spans", name)
		}
	}
}
