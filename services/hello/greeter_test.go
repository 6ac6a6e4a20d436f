package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"

	"github.com/example/micro-starter/pkg/service"
	"github.com/example/micro-starter/pkg/service/servicetest"
	"github.com/example/micro-starter/pkg/wrappers"
	hellopb "github.com/example/micro-starter/services/hello/proto"
	userpb "github.com/example/micro-starter/services/user/proto"
)

// fakeUsers is a userpb.UserService whose Get answers with get.
type fakeUsers struct {
	get func(id string) (*userpb.GetResponse, error)

	mu    sync.Mutex
	calls []string // ids asked for
}

var _ userpb.UserService = (*fakeUsers)(nil)

func (f *fakeUsers) Get(_ context.Context, in *userpb.GetRequest, _ ...client.CallOption) (*userpb.GetResponse, error) {
	f.mu.Lock()
	f.calls = append(f.calls, in.Id)
	get := f.get
	f.mu.Unlock()
	if get == nil {
		return nil, errors.New("fakeUsers: Get not expected")
	}
	return get(in.Id)
}

// answer makes Get answer with get from now on, and forgets earlier calls.
func (f *fakeUsers) answer(get func(id string) (*userpb.GetResponse, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.get, f.calls = get, nil
}

func (f *fakeUsers) List(context.Context, *userpb.ListRequest, ...client.CallOption) (*userpb.ListResponse, error) {
	return nil, errors.New("fakeUsers: List not expected")
}

func (f *fakeUsers) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// directoryOf answers Get from a map of id to name, as user instance inst.
func directoryOf(inst string, names map[string]string) func(string) (*userpb.GetResponse, error) {
	return func(id string) (*userpb.GetResponse, error) {
		name, ok := names[id]
		if !ok {
			return nil, merrors.NotFound("user.Get", "user %q: not found", id)
		}
		return &userpb.GetResponse{User: &userpb.User{Id: id, Name: name}, Instance: inst}, nil
	}
}

func failWith(err error) func(string) (*userpb.GetResponse, error) {
	return func(string) (*userpb.GetResponse, error) { return nil, err }
}

// wireText is err as it reaches a caller from a remote service: its JSON
// text in a plain error, not an *errors.Error.
func wireText(err error) error { return errors.New(err.Error()) }

// wantGreetError checks that err is a go-micro error of hello.Greet with
// code, whose detail contains detail, and that hello's callers would not
// retry it as a transport failure.
func wantGreetError(tb testing.TB, err error, code int32, detail string) {
	tb.Helper()
	e, ok := merrors.As(err)
	if !ok {
		tb.Fatalf("err = %v (%T), want a go-micro *errors.Error", err, err)
	}
	if e.Id != "hello.Greet" || e.Code != code {
		tb.Errorf("err id %q code %d, want id %q code %d (err %v)", e.Id, e.Code, "hello.Greet", code, err)
	}
	if !strings.Contains(e.Detail, detail) {
		tb.Errorf("err detail %q, want it to contain %q", e.Detail, detail)
	}
	// The same check on what a caller of hello receives over the wire.
	for _, got := range []error{err, wireText(err)} {
		retry, rerr := wrappers.RetryTransportErrors(context.Background(), nil, 1, got)
		if retry || rerr != nil {
			tb.Errorf("RetryTransportErrors(%v) = %v, %v; want no retry", got, retry, rerr)
		}
	}
}

func TestGreet(t *testing.T) {
	users := map[string]string{"ada": "Ada Lovelace", "bob": "Bob"}
	tests := []struct {
		name       string
		req        *hellopb.GreetRequest
		want       string // message
		wantUserIn string // user instance
		wantCalls  string // ids asked of the user service
	}{
		{"by name", &hellopb.GreetRequest{Name: "Bob"}, "Hello, Bob!", "", "[]"},
		{"name is trimmed", &hellopb.GreetRequest{Name: "  Bob\t"}, "Hello, Bob!", "", "[]"},
		{"blank user_id with a name", &hellopb.GreetRequest{UserId: "  ", Name: "Bob"}, "Hello, Bob!", "", "[]"},
		{"100 runes", &hellopb.GreetRequest{Name: strings.Repeat("é", 100)}, "Hello, " + strings.Repeat("é", 100) + "!", "", "[]"},
		{"by user_id", &hellopb.GreetRequest{UserId: "ada"}, "Hello, Ada Lovelace!", "user-7", "[ada]"},
		{"user_id is trimmed", &hellopb.GreetRequest{UserId: " ada "}, "Hello, Ada Lovelace!", "user-7", "[ada]"},
		{"blank name with a user_id", &hellopb.GreetRequest{UserId: "bob", Name: " "}, "Hello, Bob!", "user-7", "[bob]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeUsers{get: directoryOf("user-7", users)}
			h := &Handler{users: fake, instance: "hello-1", log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			var rsp hellopb.GreetResponse
			if err := h.Greet(context.Background(), tt.req, &rsp); err != nil {
				t.Fatalf("Greet(%v): %v", tt.req, err)
			}
			if rsp.Message != tt.want {
				t.Errorf("Message = %q, want %q", rsp.Message, tt.want)
			}
			if rsp.Instance != "hello-1" {
				t.Errorf("Instance = %q, want hello-1", rsp.Instance)
			}
			if rsp.UserInstance != tt.wantUserIn {
				t.Errorf("UserInstance = %q, want %q", rsp.UserInstance, tt.wantUserIn)
			}
			if got := fmt.Sprint(fake.Calls()); got != tt.wantCalls {
				t.Errorf("user service asked for %s, want %s", got, tt.wantCalls)
			}
		})
	}
}

// TestGreetErrors: hello's own answers to requests it refuses, without
// asking the user service.
func TestGreetErrors(t *testing.T) {
	tests := []struct {
		name   string
		req    *hellopb.GreetRequest
		detail string
	}{
		{"both empty", &hellopb.GreetRequest{}, "one is required"},
		{"both blank", &hellopb.GreetRequest{UserId: " ", Name: "\t"}, "one is required"},
		{"both set", &hellopb.GreetRequest{UserId: "ada", Name: "Bob"}, "not both"},
		{"name of 101 runes", &hellopb.GreetRequest{Name: strings.Repeat("é", 101)}, "longer than 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeUsers{}
			h := &Handler{users: fake, instance: "hello-1", log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			var rsp hellopb.GreetResponse
			err := h.Greet(context.Background(), tt.req, &rsp)
			if err == nil {
				t.Fatalf("Greet(%v) = %v, want an error", tt.req, &rsp)
			}
			wantGreetError(t, err, 400, tt.detail)
			if calls := fake.Calls(); len(calls) > 0 {
				t.Errorf("user service asked for %v, want no call", calls)
			}
			if rsp.Message != "" {
				t.Errorf("Message = %q set on error", rsp.Message)
			}
		})
	}
}

// TestUserErrorsAsHelloCallersSeeThem runs Greet in hello's server, as main
// does, and calls it as the gateway does. Greet returns the user service's
// errors as they are: its callers see the user service's own answers with
// their code (a 404 stays a 404), and hello's failure to reach the user
// service as hello's, with its code, which they do not retry.
func TestUserErrorsAsHelloCallersSeeThem(t *testing.T) {
	fake := &fakeUsers{}
	hello := startHello(t, &Handler{users: fake, instance: "hello-1", log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	notFound := merrors.NotFound("user.Get", `user "nobody": not found`)
	tests := []struct {
		name string
		err  error // from the user service's client
		code int32
		id   string
	}{
		{"not found", notFound, 404, "user.Get"},
		{"not found, as JSON text", wireText(notFound), 404, "user.Get"},
		{"bad user id", merrors.BadRequest("user.Get", `id: "BAD!" is not a user id`), 400, "user.Get"},
		{"user service failed", merrors.InternalServerError("user.Get", "disk on fire"), 500, "user.Get"},
		{"connection refused", merrors.New("go.micro.client", "connection error: dial tcp 127.0.0.1:1: connect: connection refused", 503), 503, "hello"},
		{"failed dial", merrors.InternalServerError("go.micro.client", "Error sending request: context deadline exceeded"), 500, "hello"},
		{"timeout", merrors.Timeout("go.micro.client", "context deadline exceeded"), 408, "hello"},
		{"no user instance", merrors.New("go.micro.client", "service user: no instance available", 503), 503, "hello"},
		{"plain error", errors.New("something broke"), 500, "hello"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake.answer(failWith(tt.err))
			_, err := hello.Greet(context.Background(), &hellopb.GreetRequest{UserId: "ada"})
			e, ok := wrappers.Error(err)
			if !ok || e.Code != tt.code || e.Id != tt.id {
				t.Errorf("Greet: %v, want code %d from %q", err, tt.code, tt.id)
			}
			if calls := fake.Calls(); len(calls) != 1 {
				t.Errorf("user service asked %d times, want once (no retry by hello's caller)", len(calls))
			}
		})
	}
}

// startHello serves h as hello's main does, on loopback with a memory
// registry, and returns a client of it.
func startHello(t *testing.T, h *Handler) hellopb.HelloService {
	t.Helper()
	cfg := service.DefaultConfig("hello")
	cfg.Registry.Name = "memory"
	cfg.ServerAddress = "127.0.0.1:0"
	cfg.Drain = 0
	svc, err := service.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := hellopb.RegisterHelloServiceHandler(svc.Server(), h); err != nil {
		t.Fatal(err)
	}
	servicetest.MustRun(t, svc)
	return hellopb.NewHelloService("hello", svc.Client())
}

// TestGreetAllocations: a greeting by name allocates only its message
// (fmt.Sprintf took one more, for the name boxed in an interface).
func TestGreetAllocations(t *testing.T) {
	h := &Handler{users: &fakeUsers{}, instance: "hello-1", log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	req, rsp := &hellopb.GreetRequest{Name: "Bob"}, &hellopb.GreetResponse{}
	ctx := context.Background()
	if allocs := testing.AllocsPerRun(100, func() { _ = h.Greet(ctx, req, rsp) }); allocs > 1 {
		t.Errorf("%.0f allocations per greeting, want at most 1", allocs)
	}
	if rsp.Message != "Hello, Bob!" {
		t.Errorf("Message = %q, want Hello, Bob!", rsp.Message)
	}
}
