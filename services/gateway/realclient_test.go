package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"

	"go-micro.dev/v4/metadata"

	"github.com/example/micro-starter/pkg/service"
	"github.com/example/micro-starter/pkg/service/servicetest"
	hellopb "github.com/example/micro-starter/services/hello/proto"
	userpb "github.com/example/micro-starter/services/user/proto"
)

// recordingHello is a hello service handler that greets by name and
// records the request id each call carries.
type recordingHello struct {
	mu         sync.Mutex
	requestIDs []string
}

func (h *recordingHello) Greet(ctx context.Context, req *hellopb.GreetRequest, rsp *hellopb.GreetResponse) error {
	// gRPC sends metadata keys in lower case.
	id, _ := metadata.Get(ctx, "x-request-id")
	h.mu.Lock()
	h.requestIDs = append(h.requestIDs, id)
	h.mu.Unlock()
	rsp.Message = "Hello, " + req.Name + "!"
	return nil
}

func (h *recordingHello) calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.requestIDs...)
}

// TestAPIOnRealClient runs the API on the client every service uses,
// calling a real gRPC server in the same process (memory registry): input
// the client could not encode never reaches it nor opens the circuit, and
// the request id reaches the service.
func TestAPIOnRealClient(t *testing.T) {
	cfg := service.DefaultConfig("hello")
	cfg.Registry.Name = "memory"
	cfg.ServerAddress = "127.0.0.1:0"
	cfg.Drain = 0
	svc, err := service.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	h := &recordingHello{}
	if err := hellopb.RegisterHelloServiceHandler(svc.Server(), h); err != nil {
		t.Fatal(err)
	}
	servicetest.MustRun(t, svc)

	f := newFixture(t, nil, nil, nil)
	f.api.hello = hellopb.NewHelloService("hello", svc.Client())
	f.api.users = userpb.NewUserService("user", svc.Client())

	// Far more than the breaker's volume threshold: had they counted as
	// failures, the circuit would be open after them.
	const bad = 50
	for range bad {
		rec := f.serve(t, "GET", "/hello?name=%ff", nil)
		if rec.Code != http.StatusBadRequest {
			t.Fatalf("GET /hello?name=%%ff: status %d, want 400; body %s", rec.Code, rec.Body)
		}
	}
	if calls := h.calls(); len(calls) != 0 {
		t.Fatalf("the service got %d calls, want none", len(calls))
	}

	rec := f.serve(t, "GET", "/hello?name=Bob", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /hello?name=Bob after the bad requests: status %d, want 200; body %s", rec.Code, rec.Body)
	}
	calls := h.calls()
	if id := rec.Header().Get("X-Request-Id"); len(calls) != 1 || calls[0] != id {
		t.Errorf("the service got request ids %q, want one, the answer's %q", calls, id)
	}
}
