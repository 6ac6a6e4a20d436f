package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"

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
	f.mu.Unlock()
	if f.get == nil {
		return nil, errors.New("fakeUsers: Get not expected")
	}
	return f.get(in.Id)
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
			h := &Handler{users: fake, instance: "hello-1"}
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

func TestGreetErrors(t *testing.T) {
	notFound := merrors.NotFound("user.Get", `user "nobody": not found`)
	tests := []struct {
		name   string
		req    *hellopb.GreetRequest
		get    func(string) (*userpb.GetResponse, error)
		code   int32
		detail string
		asked  bool // whether the user service is called
	}{
		{"both empty", &hellopb.GreetRequest{}, nil, 400, "one is required", false},
		{"both blank", &hellopb.GreetRequest{UserId: " ", Name: "\t"}, nil, 400, "one is required", false},
		{"both set", &hellopb.GreetRequest{UserId: "ada", Name: "Bob"}, nil, 400, "not both", false},
		{"name of 101 runes", &hellopb.GreetRequest{Name: strings.Repeat("é", 101)}, nil, 400, "longer than 100", false},
		{"user not found", &hellopb.GreetRequest{UserId: "nobody"}, failWith(notFound), 404, `user.Get: user "nobody": not found`, true},
		{"user not found, as JSON text", &hellopb.GreetRequest{UserId: "nobody"}, failWith(wireText(notFound)), 404, `user.Get: user "nobody": not found`, true},
		{"user not found, wrapped", &hellopb.GreetRequest{UserId: "nobody"}, failWith(fmt.Errorf("lookup: %w", notFound)), 404, "not found", true},
		{"bad user id", &hellopb.GreetRequest{UserId: "BAD!"}, failWith(wireText(merrors.BadRequest("user.Get", `id: "BAD!" is not a user id`))), 400, `id: "BAD!"`, true},
		{"connection error", &hellopb.GreetRequest{UserId: "ada"},
			failWith(merrors.InternalServerError("go.micro.client", "connection error: dial tcp 127.0.0.1:1: connect: connection refused")),
			500, "user.Get: connection error", true},
		{"timeout", &hellopb.GreetRequest{UserId: "ada"}, failWith(merrors.Timeout("go.micro.client", "call timeout")), 408, "call timeout", true},
		{"no user instance", &hellopb.GreetRequest{UserId: "ada"}, failWith(merrors.New("go.micro.client", "service user: no instance available", 503)), 503, "no instance available", true},
		{"transport error", &hellopb.GreetRequest{UserId: "ada"}, failWith(merrors.InternalServerError("go.micro.client.transport", "EOF")), 500, "EOF", true},
		{"plain error", &hellopb.GreetRequest{UserId: "ada"}, failWith(errors.New("something broke")), 500, "user.Get: something broke", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeUsers{get: tt.get}
			h := &Handler{users: fake, instance: "hello-1"}
			var rsp hellopb.GreetResponse
			err := h.Greet(context.Background(), tt.req, &rsp)
			if err == nil {
				t.Fatalf("Greet(%v) = %v, want an error", tt.req, &rsp)
			}
			wantGreetError(t, err, tt.code, tt.detail)
			if asked := len(fake.Calls()) > 0; asked != tt.asked {
				t.Errorf("user service called: %v, want %v", asked, tt.asked)
			}
			if rsp.Message != "" {
				t.Errorf("Message = %q set on error", rsp.Message)
			}
		})
	}
}
