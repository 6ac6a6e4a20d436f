package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"

	"github.com/example/micro-starter/pkg/metrics"
	"github.com/example/micro-starter/pkg/tracing"
	hellopb "github.com/example/micro-starter/services/hello/proto"
	userpb "github.com/example/micro-starter/services/user/proto"
)

// fakeUsers is a userpb.UserService answering with get and list, and
// recording the requests it was sent.
type fakeUsers struct {
	get  func(*userpb.GetRequest) (*userpb.GetResponse, error)
	list func(*userpb.ListRequest) (*userpb.ListResponse, error)

	mu       sync.Mutex
	requests []string
}

var _ userpb.UserService = (*fakeUsers)(nil)

func (f *fakeUsers) record(req string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, req)
}

func (f *fakeUsers) Get(_ context.Context, in *userpb.GetRequest, _ ...client.CallOption) (*userpb.GetResponse, error) {
	f.record(fmt.Sprintf("Get(id=%q)", in.Id))
	if f.get == nil {
		return nil, errors.New("fakeUsers: Get not expected")
	}
	return f.get(in)
}

func (f *fakeUsers) List(_ context.Context, in *userpb.ListRequest, _ ...client.CallOption) (*userpb.ListResponse, error) {
	f.record(fmt.Sprintf("List(page=%d page_size=%d)", in.Page, in.PageSize))
	if f.list == nil {
		return nil, errors.New("fakeUsers: List not expected")
	}
	return f.list(in)
}

func (f *fakeUsers) Requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// fakeHello is a hellopb.HelloService answering with greet.
type fakeHello struct {
	greet func(*hellopb.GreetRequest) (*hellopb.GreetResponse, error)

	mu         sync.Mutex
	requests   []string
	requestIDs []string // the request id in each call's go-micro metadata
}

// metadataRequestID is the request id a service finds in the go-micro
// metadata of a call.
func metadataRequestID(ctx context.Context) string {
	id, _ := metadata.Get(ctx, "X-Request-Id")
	return id
}

var _ hellopb.HelloService = (*fakeHello)(nil)

func (f *fakeHello) Greet(ctx context.Context, in *hellopb.GreetRequest, _ ...client.CallOption) (*hellopb.GreetResponse, error) {
	f.mu.Lock()
	f.requests = append(f.requests, fmt.Sprintf("user_id=%q name=%q", in.UserId, in.Name))
	f.requestIDs = append(f.requestIDs, metadataRequestID(ctx))
	f.mu.Unlock()
	if f.greet == nil {
		return nil, errors.New("fakeHello: Greet not expected")
	}
	return f.greet(in)
}

func (f *fakeHello) Requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// Canned answers of the fakes.

func listUsers(in *userpb.ListRequest) (*userpb.ListResponse, error) {
	return &userpb.ListResponse{
		Users:    []*userpb.User{{Id: "ada", Name: "Ada Lovelace", Email: "ada@example.com"}, {Id: "alan", Name: "Alan Turing"}},
		Total:    12,
		Instance: "user-1",
	}, nil
}

func getAda(in *userpb.GetRequest) (*userpb.GetResponse, error) {
	return &userpb.GetResponse{User: &userpb.User{Id: in.Id, Name: "Ada Lovelace", Email: "ada@example.com"}, Instance: "user-2"}, nil
}

func getFails(err error) func(*userpb.GetRequest) (*userpb.GetResponse, error) {
	return func(*userpb.GetRequest) (*userpb.GetResponse, error) { return nil, err }
}

func listFails(err error) func(*userpb.ListRequest) (*userpb.ListResponse, error) {
	return func(*userpb.ListRequest) (*userpb.ListResponse, error) { return nil, err }
}

func greet(in *hellopb.GreetRequest) (*hellopb.GreetResponse, error) {
	if in.UserId != "" {
		return &hellopb.GreetResponse{Message: "Hello, Ada Lovelace!", Instance: "hello-1", UserInstance: "user-3"}, nil
	}
	return &hellopb.GreetResponse{Message: "Hello, " + in.Name + "!", Instance: "hello-1"}, nil
}

func greetFails(err error) func(*hellopb.GreetRequest) (*hellopb.GreetResponse, error) {
	return func(*hellopb.GreetRequest) (*hellopb.GreetResponse, error) { return nil, err }
}

// apiFixture is an API on fakes, with its log kept.
type apiFixture struct {
	api   *API
	users *fakeUsers
	hello *fakeHello
	log   *bytes.Buffer
}

func newFixture(tb testing.TB, users *fakeUsers, hello *fakeHello, ready func(context.Context) error) *apiFixture {
	tb.Helper()
	if users == nil {
		users = &fakeUsers{}
	}
	if hello == nil {
		hello = &fakeHello{}
	}
	if ready == nil {
		ready = func(context.Context) error { return nil }
	}
	var log bytes.Buffer
	return &apiFixture{
		api:   &API{users: users, hello: hello, ready: ready, log: tracing.NewLogger(&log, "text")},
		users: users,
		hello: hello,
		log:   &log,
	}
}

// serve sends one request to the API and returns the recorded response.
func (f *apiFixture) serve(tb testing.TB, method, target string, body io.Reader) *httptest.ResponseRecorder {
	tb.Helper()
	req := httptest.NewRequest(method, target, body)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	f.api.Handler().ServeHTTP(rec, req)
	return rec
}

// jsonBody decodes a response that must be a JSON object.
func jsonBody(tb testing.TB, rec *httptest.ResponseRecorder) map[string]any {
	tb.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		tb.Errorf("Content-Type = %q, want application/json", ct)
	}
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		tb.Fatalf("body %q: %v", rec.Body.String(), err)
	}
	return m
}

// field returns the value at a dotted path such as "user.id" in m.
func field(tb testing.TB, m map[string]any, path string) (any, bool) {
	tb.Helper()
	var v any = m
	for _, k := range strings.Split(path, ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = obj[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// wantFields checks the fields of a JSON body: each value of want must
// equal the body's (numbers are float64), except a string ending in "…",
// which the body's must start with.
func wantFields(tb testing.TB, body map[string]any, want map[string]any) {
	tb.Helper()
	for path, w := range want {
		got, ok := field(tb, body, path)
		if !ok {
			tb.Errorf("body has no %s: %v", path, body)
			continue
		}
		if ws, isStr := w.(string); isStr && strings.HasSuffix(ws, "…") {
			gs, _ := got.(string)
			if !strings.HasPrefix(gs, strings.TrimSuffix(ws, "…")) {
				tb.Errorf("%s = %q, want it to start with %q", path, got, strings.TrimSuffix(ws, "…"))
			}
			continue
		}
		if !reflect.DeepEqual(got, w) {
			tb.Errorf("%s = %#v, want %#v", path, got, w)
		}
	}
}

func TestAPI(t *testing.T) {
	notFound := merrors.NotFound("user.Get", `user "nobody": not found`)
	tests := []struct {
		name       string
		method     string
		target     string
		body       string
		users      *fakeUsers
		hello      *fakeHello
		wantStatus int
		wantBody   map[string]any
		wantUsers  []string // requests the user service got; nil: not checked
		wantGreet  string   // the one request the hello service got; "-": none; "": not checked
	}{
		// GET /users
		{name: "list users", method: "GET", target: "/users", users: &fakeUsers{list: listUsers},
			wantStatus: 200,
			wantBody:   map[string]any{"total": 12.0, "instance": "user-1", "users": []any{map[string]any{"id": "ada", "name": "Ada Lovelace", "email": "ada@example.com"}, map[string]any{"id": "alan", "name": "Alan Turing", "email": ""}}},
			wantUsers:  []string{"List(page=0 page_size=0)"}},
		{name: "list users paged", method: "GET", target: "/users?page=2&page_size=5", users: &fakeUsers{list: listUsers},
			wantStatus: 200, wantBody: map[string]any{"total": 12.0},
			wantUsers: []string{"List(page=2 page_size=5)"}},
		{name: "list users, negative page passed on", method: "GET", target: "/users?page=-1", users: &fakeUsers{list: listFails(merrors.BadRequest("user.List", "page: must not be negative"))},
			wantStatus: 400, wantBody: map[string]any{"error": "page: must not be negative", "status": 400.0},
			wantUsers: []string{"List(page=-1 page_size=0)"}},
		{name: "page not a number", method: "GET", target: "/users?page=x", users: &fakeUsers{list: listUsers},
			wantStatus: 400, wantBody: map[string]any{"error": `page: "x" is not a whole number`, "status": 400.0},
			wantUsers: []string{}},
		{name: "page_size not a number", method: "GET", target: "/users?page_size=1.5", users: &fakeUsers{list: listUsers},
			wantStatus: 400, wantBody: map[string]any{"error": `page_size: "1.5" is not a whole number`},
			wantUsers: []string{}},
		{name: "page beyond int32", method: "GET", target: "/users?page=2147483648", users: &fakeUsers{list: listUsers},
			wantStatus: 400, wantBody: map[string]any{"error": `page: "2147483648" is not a whole number`},
			wantUsers: []string{}},
		{name: "list users, no instance", method: "GET", target: "/users", users: &fakeUsers{list: listFails(merrors.New("go.micro.client", "service user: no instance available", 503))},
			wantStatus: 503, wantBody: map[string]any{"error": "the user service is unavailable", "status": 503.0}},

		// GET /users/{id}
		{name: "get user", method: "GET", target: "/users/ada", users: &fakeUsers{get: getAda},
			wantStatus: 200, wantBody: map[string]any{"user": map[string]any{"id": "ada", "name": "Ada Lovelace", "email": "ada@example.com"}, "instance": "user-2"},
			wantUsers: []string{`Get(id="ada")`}},
		{name: "user not found", method: "GET", target: "/users/nobody", users: &fakeUsers{get: getFails(notFound)},
			wantStatus: 404, wantBody: map[string]any{"error": `user "nobody": not found`, "status": 404.0}},
		{name: "user not found, as JSON text", method: "GET", target: "/users/nobody", users: &fakeUsers{get: getFails(errors.New(notFound.Error()))},
			wantStatus: 404, wantBody: map[string]any{"error": `user "nobody": not found`, "status": 404.0}},
		{name: "user not found, wrapped", method: "GET", target: "/users/nobody", users: &fakeUsers{get: getFails(fmt.Errorf("call: %w", notFound))},
			wantStatus: 404, wantBody: map[string]any{"status": 404.0}},
		{name: "bad user id", method: "GET", target: "/users/BAD!", users: &fakeUsers{get: getFails(merrors.BadRequest("user.Get", `id: "BAD!" is not a user id`))},
			wantStatus: 400, wantBody: map[string]any{"error": `id: "BAD!" is not a user id`, "status": 400.0},
			wantUsers: []string{`Get(id="BAD!")`}},
		{name: "user service unavailable", method: "GET", target: "/users/ada", users: &fakeUsers{get: getFails(merrors.New("go.micro.client", "service user: no instance available", 503))},
			wantStatus: 503, wantBody: map[string]any{"error": "the user service is unavailable", "status": 503.0}},
		{name: "user service timeout", method: "GET", target: "/users/ada", users: &fakeUsers{get: getFails(merrors.Timeout("go.micro.client", "call timeout"))},
			wantStatus: 504, wantBody: map[string]any{"error": "the user service did not answer in time", "status": 504.0}},
		{name: "user service internal error", method: "GET", target: "/users/ada", users: &fakeUsers{get: getFails(merrors.InternalServerError("user.Get", "disk on fire"))},
			wantStatus: 502, wantBody: map[string]any{"error": "the user service failed", "status": 502.0}},
		{name: "user service connection error", method: "GET", target: "/users/ada", users: &fakeUsers{get: getFails(merrors.InternalServerError("go.micro.client", "connection error: refused"))},
			wantStatus: 502, wantBody: map[string]any{"error": "the user service failed", "status": 502.0}},
		{name: "plain error", method: "GET", target: "/users/ada", users: &fakeUsers{get: getFails(errors.New("secret internals"))},
			wantStatus: 500, wantBody: map[string]any{"error": "internal error", "status": 500.0}},

		// GET /hello
		{name: "hello by user_id", method: "GET", target: "/hello?user_id=ada", hello: &fakeHello{greet: greet},
			wantStatus: 200, wantBody: map[string]any{"message": "Hello, Ada Lovelace!", "instances": map[string]any{"hello": "hello-1", "user": "user-3"}},
			wantGreet: `user_id="ada" name=""`},
		{name: "hello by name", method: "GET", target: "/hello?name=Bob", hello: &fakeHello{greet: greet},
			wantStatus: 200, wantBody: map[string]any{"message": "Hello, Bob!", "instances": map[string]any{"hello": "hello-1"}},
			wantGreet: `user_id="" name="Bob"`},
		{name: "hello by escaped name", method: "GET", target: "/hello?name=Ada%20%26%20Bob", hello: &fakeHello{greet: greet},
			wantStatus: 200, wantBody: map[string]any{"message": "Hello, Ada & Bob!"},
			wantGreet: `user_id="" name="Ada & Bob"`},
		{name: "hello refuses", method: "GET", target: "/hello", hello: &fakeHello{greet: greetFails(errors.New(merrors.BadRequest("hello.Greet", "user_id or name: one is required").Error()))},
			wantStatus: 400, wantBody: map[string]any{"error": "user_id or name: one is required", "status": 400.0},
			wantGreet: `user_id="" name=""`},
		{name: "hello: user not found", method: "GET", target: "/hello?user_id=nobody", hello: &fakeHello{greet: greetFails(merrors.NotFound("hello.Greet", `user.Get: user "nobody": not found`))},
			wantStatus: 404, wantBody: map[string]any{"error": `user.Get: user "nobody": not found`}},

		// POST /hello
		{name: "post hello", method: "POST", target: "/hello", body: `{"name":"Bob"}`, hello: &fakeHello{greet: greet},
			wantStatus: 200, wantBody: map[string]any{"message": "Hello, Bob!", "instances": map[string]any{"hello": "hello-1"}},
			wantGreet: `user_id="" name="Bob"`},
		{name: "post hello by user_id", method: "POST", target: "/hello", body: "{\"user_id\": \"ada\"}\n", hello: &fakeHello{greet: greet},
			wantStatus: 200, wantBody: map[string]any{"instances": map[string]any{"hello": "hello-1", "user": "user-3"}},
			wantGreet: `user_id="ada" name=""`},
		{name: "post bad JSON", method: "POST", target: "/hello", body: `{"name":`, hello: &fakeHello{greet: greet},
			wantStatus: 400, wantBody: map[string]any{"error": "invalid JSON body: …", "status": 400.0}, wantGreet: "-"},
		{name: "post empty body", method: "POST", target: "/hello", body: ``, hello: &fakeHello{greet: greet},
			wantStatus: 400, wantBody: map[string]any{"error": "invalid JSON body: …"}, wantGreet: "-"},
		{name: "post unknown field", method: "POST", target: "/hello", body: `{"name":"Bob","nmae":"Bob"}`, hello: &fakeHello{greet: greet},
			wantStatus: 400, wantBody: map[string]any{"error": `invalid JSON body: json: unknown field "nmae"`}, wantGreet: "-"},
		{name: "post wrong type", method: "POST", target: "/hello", body: `{"name":42}`, hello: &fakeHello{greet: greet},
			wantStatus: 400, wantBody: map[string]any{"error": "invalid JSON body: …"}, wantGreet: "-"},
		{name: "post two JSON values", method: "POST", target: "/hello", body: `{"name":"Bob"} {"name":"Eve"}`, hello: &fakeHello{greet: greet},
			wantStatus: 400, wantBody: map[string]any{"error": "invalid JSON body: data after the object"}, wantGreet: "-"},
		// A stray closing bracket after the object is not JSON either.
		{name: "post trailing brace", method: "POST", target: "/hello", body: `{"name":"Bob"}}`, hello: &fakeHello{greet: greet},
			wantStatus: 400, wantBody: map[string]any{"error": "invalid JSON body: …"}, wantGreet: "-"},
		{name: "post body over 1 MiB", method: "POST", target: "/hello", body: `{"name":"` + strings.Repeat("a", maxBodyBytes) + `"}`, hello: &fakeHello{greet: greet},
			wantStatus: 400, wantBody: map[string]any{"error": "invalid JSON body: longer than 1048576 bytes"}, wantGreet: "-"},
		{name: "post hello service down", method: "POST", target: "/hello", body: `{"name":"Bob"}`, hello: &fakeHello{greet: greetFails(merrors.New("go.micro.client", "service hello: no instance available", 503))},
			wantStatus: 503, wantBody: map[string]any{"error": "the hello service is unavailable"}},

		// health
		{name: "healthz", method: "GET", target: "/healthz", wantStatus: 200, wantBody: map[string]any{"status": "ok"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.users, tt.hello, nil)
			var body io.Reader
			if tt.method == "POST" {
				body = strings.NewReader(tt.body)
			}
			rec := f.serve(t, tt.method, tt.target, body)
			if rec.Code != tt.wantStatus {
				t.Errorf("%s %s: status %d, want %d; body %.200s", tt.method, tt.target, rec.Code, tt.wantStatus, rec.Body.String())
			}
			answer := jsonBody(t, rec)
			wantFields(t, answer, tt.wantBody)
			checkRequestID(t, rec, answer, f.log.String())

			if tt.wantUsers != nil {
				if got := f.users.Requests(); fmt.Sprint(got) != fmt.Sprint(tt.wantUsers) {
					t.Errorf("user service requests %q, want %q", got, tt.wantUsers)
				}
			}
			switch got := f.hello.Requests(); {
			case tt.wantGreet == "-" && len(got) != 0:
				t.Errorf("hello service called with %v, want no call", got)
			case tt.wantGreet != "" && tt.wantGreet != "-" && (len(got) != 1 || got[0] != tt.wantGreet):
				t.Errorf("hello service requests %v, want one with %s", got, tt.wantGreet)
			}

			// Failures of what is behind the gateway are logged; a
			// caller's mistakes are not.
			logged := strings.Contains(f.log.String(), "request failed")
			if want := rec.Code >= 500; logged != want {
				t.Errorf("logged request failure: %v, want %v; log:\n%s", logged, want, f.log)
			}
		})
	}
}

func TestAPIMethodNotAllowed(t *testing.T) {
	tests := []struct {
		method, target, allow string
	}{
		{"PUT", "/hello", "GET, HEAD, POST"},
		{"DELETE", "/users", "GET, HEAD"},
		{"POST", "/users/ada", "GET, HEAD"},
		{"POST", "/healthz", "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			f := newFixture(t, &fakeUsers{list: listUsers, get: getAda}, &fakeHello{greet: greet}, nil)
			rec := f.serve(t, tt.method, tt.target, strings.NewReader(`{"name":"Bob"}`))
			if rec.Code != http.StatusMethodNotAllowed {
				t.Errorf("status %d, want 405", rec.Code)
			}
			if got := rec.Header().Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
			wantFields(t, jsonBody(t, rec), map[string]any{"status": 405.0, "error": "method " + tt.method + " not allowed on " + tt.target})
			if n := len(f.users.Requests()) + len(f.hello.Requests()); n != 0 {
				t.Errorf("%d calls to services, want none", n)
			}
		})
	}
}

// TestAPIUnknownPath: a path no route takes is a 404 in JSON, like every
// other error of the API (ServeMux's own answer is plain text).
func TestAPIUnknownPath(t *testing.T) {
	for _, target := range []string{"/", "/nope", "/users/ada/friends", "/hello/"} {
		t.Run(target, func(t *testing.T) {
			f := newFixture(t, &fakeUsers{list: listUsers, get: getAda}, &fakeHello{greet: greet}, nil)
			rec := f.serve(t, "GET", target, nil)
			if rec.Code != http.StatusNotFound {
				t.Errorf("status %d, want 404", rec.Code)
			}
			wantFields(t, jsonBody(t, rec), map[string]any{"status": 404.0, "error": "no route for " + target})
			if n := len(f.users.Requests()) + len(f.hello.Requests()); n != 0 {
				t.Errorf("%d calls to services, want none", n)
			}
		})
	}
}

// TestAPIReadyz: /readyz says why the gateway is not ready in general
// terms; what the registry said is in the log line with the request id.
func TestAPIReadyz(t *testing.T) {
	const detail = `Get "http://127.0.0.1:8500/v1/health/service/user": dial tcp 127.0.0.1:8500: connect: connection refused`
	tests := []struct {
		name       string
		ready      error
		wantStatus int
		wantBody   map[string]any
		wantLog    string // in the log line of the request
	}{
		{"ready", nil, 200, map[string]any{"status": "ready"}, ""},
		{"no instance", &notReady{reason: "no instance of hello"}, 503,
			map[string]any{"error": "no instance of hello", "status": 503.0}, "no instance of hello"},
		{"registry unreachable", &notReady{reason: "registry unreachable", err: errors.New(detail)}, 503,
			map[string]any{"error": "registry unreachable", "status": 503.0}, "dial tcp 127.0.0.1:8500"},
		{"any other error", errors.New(detail), 503,
			map[string]any{"error": "not ready", "status": 503.0}, "dial tcp 127.0.0.1:8500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotCtx context.Context
			f := newFixture(t, nil, nil, func(ctx context.Context) error {
				gotCtx = ctx
				return tt.ready
			})
			rec := f.serve(t, "GET", "/readyz", nil)
			if rec.Code != tt.wantStatus {
				t.Errorf("status %d, want %d", rec.Code, tt.wantStatus)
			}
			body := jsonBody(t, rec)
			wantFields(t, body, tt.wantBody)
			if gotCtx == nil {
				t.Error("ready was not called")
			}
			id := checkRequestID(t, rec, body, f.log.String())
			if tt.ready == nil {
				return
			}
			if strings.Contains(rec.Body.String(), "127.0.0.1") || strings.Contains(rec.Body.String(), "dial") {
				t.Errorf("body %s has the registry's detail", rec.Body.String())
			}
			if line := logLine(f.log.String(), id); !strings.Contains(line, tt.wantLog) {
				t.Errorf("log line of request %s = %q, want it to hold %q", id, line, tt.wantLog)
			}
		})
	}
}

// requestIDPattern is what the gateway's request ids look like.
var requestIDPattern = regexp.MustCompile(`^[0-9a-f]{16}$`)

// checkRequestID checks that an answer carries its request id in the
// X-Request-Id header and, if it is a 5xx, in the body and in a log line,
// and returns the id.
func checkRequestID(tb testing.TB, rec *httptest.ResponseRecorder, body map[string]any, log string) string {
	tb.Helper()
	id := rec.Header().Get("X-Request-Id")
	if !requestIDPattern.MatchString(id) {
		tb.Errorf("X-Request-Id = %q, want 16 hex digits", id)
	}
	bodyID, inBody := body["request_id"]
	switch {
	case rec.Code >= 500 && bodyID != id:
		tb.Errorf("body request_id = %#v, want the header's %q", bodyID, id)
	case rec.Code < 500 && inBody:
		tb.Errorf("a %d answer has request_id %v, want none: a 4xx is not logged", rec.Code, bodyID)
	}
	if rec.Code >= 500 && logLine(log, id) == "" {
		tb.Errorf("no log line with request_id=%s:\n%s", id, log)
	}
	return id
}

// logLine returns the line of log with request_id=id, or "".
func logLine(log, id string) string {
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line+" ", " request_id="+id+" ") { // the id may end the line
			return line
		}
	}
	return ""
}

// TestAPIRefusesMalformedInput: a value the RPC client could not encode
// (not UTF-8) or an overlong one, in any field, from the path, the query or
// the body, is a 400 naming the field, and no call is made: such a request
// must never count against a service's circuit.
func TestAPIRefusesMalformedInput(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name, method, target, body, wantError string
	}{
		{"path id not UTF-8", "GET", "/users/%ff", "", "id: not valid UTF-8"},
		{"path id partly UTF-8", "GET", "/users/ada%ff", "", "id: not valid UTF-8"},
		{"path id too long", "GET", "/users/" + long(maxIDBytes+1), "", "id: longer than 128 bytes"},
		{"page not UTF-8", "GET", "/users?page=%ff", "", "page: not valid UTF-8"},
		{"page_size not UTF-8", "GET", "/users?page_size=1%ff", "", "page_size: not valid UTF-8"},
		{"page too long", "GET", "/users?page=" + strings.Repeat("0", 11) + "1", "", "page: longer than 11 bytes"},
		{"page_size too long", "GET", "/users?page_size=" + long(10000), "", "page_size: longer than 11 bytes"},
		{"query name not UTF-8", "GET", "/hello?name=%ff", "", "name: not valid UTF-8"},
		{"query name, overlong encoding", "GET", "/hello?name=%c0%80", "", "name: not valid UTF-8"},
		{"query name, surrogate", "GET", "/hello?name=%ed%a0%80", "", "name: not valid UTF-8"},
		{"query name too long", "GET", "/hello?name=" + long(maxTextBytes+1), "", "name: longer than 400 bytes"},
		{"query user_id not UTF-8", "GET", "/hello?user_id=%ff", "", "user_id: not valid UTF-8"},
		{"query user_id too long", "GET", "/hello?user_id=" + long(maxIDBytes+1), "", "user_id: longer than 128 bytes"},
		{"body name not UTF-8", "POST", "/hello", "{\"name\":\"Bob\xff\"}", "invalid JSON body: not valid UTF-8"},
		{"body user_id not UTF-8", "POST", "/hello", "{\"user_id\":\"\xff\"}", "invalid JSON body: not valid UTF-8"},
		{"body key not UTF-8", "POST", "/hello", "{\"name\":\"Bob\",\"\xff\":1}", "invalid JSON body: not valid UTF-8"},
		{"body name too long", "POST", "/hello", `{"name":"` + long(maxTextBytes+1) + `"}`, "name: longer than 400 bytes"},
		{"body user_id too long", "POST", "/hello", `{"user_id":"` + long(maxIDBytes+1) + `"}`, "user_id: longer than 128 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, &fakeUsers{list: listUsers, get: getAda}, &fakeHello{greet: greet}, nil)
			var body io.Reader
			if tt.method == "POST" {
				body = strings.NewReader(tt.body)
			}
			rec := f.serve(t, tt.method, tt.target, body)
			if rec.Code != http.StatusBadRequest {
				t.Errorf("status %d, want 400; body %.200s", rec.Code, rec.Body.String())
			}
			wantFields(t, jsonBody(t, rec), map[string]any{"error": tt.wantError, "status": 400.0})
			if calls := append(f.users.Requests(), f.hello.Requests()...); len(calls) != 0 {
				t.Errorf("calls made: %.200q, want none", calls)
			}
		})
	}
}

// TestAPIForwardsWithinBounds: the bounds of TestAPIRefusesMalformedInput
// take nothing from the services: the longest value of each field is
// forwarded as it came.
func TestAPIForwardsWithinBounds(t *testing.T) {
	id := strings.Repeat("a", maxIDBytes)
	name := strings.Repeat("𝄞", 100) // 4 bytes each: the longest name hello takes
	tests := []struct {
		name, method, target, body string
		wantUsers                  []string
		wantGreet                  []string
	}{
		{"path id", "GET", "/users/" + id, "", []string{fmt.Sprintf("Get(id=%q)", id)}, nil},
		{"page", "GET", "/users?page=-2147483648&page_size=00000000005", "", []string{"List(page=-2147483648 page_size=5)"}, nil},
		{"query name", "GET", "/hello?name=" + url.QueryEscape(name), "", nil, []string{fmt.Sprintf("user_id=\"\" name=%q", name)}},
		{"query user_id", "GET", "/hello?user_id=" + id, "", nil, []string{fmt.Sprintf("user_id=%q name=\"\"", id)}},
		{"body name", "POST", "/hello", `{"name":"` + name + `"}`, nil, []string{fmt.Sprintf("user_id=\"\" name=%q", name)}},
		{"body user_id", "POST", "/hello", `{"user_id":"` + id + `"}`, nil, []string{fmt.Sprintf("user_id=%q name=\"\"", id)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, &fakeUsers{list: listUsers, get: getAda}, &fakeHello{greet: greet}, nil)
			var body io.Reader
			if tt.method == "POST" {
				body = strings.NewReader(tt.body)
			}
			rec := f.serve(t, tt.method, tt.target, body)
			if rec.Code != http.StatusOK {
				t.Errorf("status %d, want 200; body %.200s", rec.Code, rec.Body.String())
			}
			if got := f.users.Requests(); fmt.Sprint(got) != fmt.Sprint(tt.wantUsers) {
				t.Errorf("user service requests %q, want %q", got, tt.wantUsers)
			}
			if got := f.hello.Requests(); fmt.Sprint(got) != fmt.Sprint(tt.wantGreet) {
				t.Errorf("hello service requests %q, want %q", got, tt.wantGreet)
			}
		})
	}
}

// TestAPIFailureHidesDetail: a 5xx answer says what failed in general
// terms, never the addresses, ports or registry text of the error behind
// it; that detail is in the log line with the answer's request id.
func TestAPIFailureHidesDetail(t *testing.T) {
	const detail = "dial tcp 127.0.0.1:42173: connect: connection refused"
	refused := merrors.InternalServerError("go.micro.client", "connection error: "+detail)
	tests := []struct {
		name       string
		target     string
		users      *fakeUsers
		hello      *fakeHello
		wantStatus int
		wantError  string
	}{
		{"get user, refused", "/users/ada", &fakeUsers{get: getFails(refused)}, nil, 502, "the user service failed"},
		{"list users, refused as JSON text", "/users", &fakeUsers{list: listFails(errors.New(refused.Error()))}, nil, 502, "the user service failed"},
		{"hello, refused", "/hello?name=Bob", nil, &fakeHello{greet: greetFails(refused)}, 502, "the hello service failed"},
		{"hello, user's failure passed on", "/hello?user_id=ada", nil,
			&fakeHello{greet: greetFails(merrors.InternalServerError("hello.Greet", "user.Get: "+detail))}, 502, "the hello service failed"},
		{"hello, no instance", "/hello?name=Bob", nil,
			&fakeHello{greet: greetFails(merrors.New("go.micro.client", "service hello: no instance in registry consul at 127.0.0.1:42173 ("+detail+")", 503))}, 503, "the hello service is unavailable"},
		{"user, timeout", "/users/ada", &fakeUsers{get: getFails(merrors.Timeout("go.micro.client", "call timeout: "+detail))}, nil, 504, "the user service did not answer in time"},
		{"user, not a go-micro error", "/users/ada", &fakeUsers{get: getFails(errors.New(detail))}, nil, 500, "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.users, tt.hello, nil)
			rec := f.serve(t, "GET", tt.target, nil)
			if rec.Code != tt.wantStatus {
				t.Errorf("status %d, want %d", rec.Code, tt.wantStatus)
			}
			body := jsonBody(t, rec)
			wantFields(t, body, map[string]any{"error": tt.wantError, "status": float64(tt.wantStatus)})
			for _, internal := range []string{"127.0.0.1", "42173", "dial", "refused", "go.micro", "registry", "consul"} {
				if strings.Contains(rec.Body.String(), internal) {
					t.Errorf("body %s contains %q", rec.Body.String(), internal)
				}
			}
			id := checkRequestID(t, rec, body, f.log.String())
			if line := logLine(f.log.String(), id); !strings.Contains(line, "127.0.0.1:42173") {
				t.Errorf("log line of request %s lacks the detail: %q", id, line)
			}
		})
	}
}

// TestAPIRequestID: every answer has a request id of the gateway's own
// making, and the calls made for the request carry it in their metadata.
func TestAPIRequestID(t *testing.T) {
	f := newFixture(t, nil, &fakeHello{greet: greet}, nil)
	seen := map[string]bool{}
	for i := range 3 {
		req := httptest.NewRequest("GET", "/hello?name=Bob", nil)
		// A client's own id is not taken: it goes to the log as is, and
		// nothing makes it unique.
		req.Header.Set("X-Request-Id", "chosen-by-the-client\nlevel=ERROR")
		rec := httptest.NewRecorder()
		f.api.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d, want 200", rec.Code)
		}
		id := checkRequestID(t, rec, jsonBody(t, rec), f.log.String())
		if seen[id] {
			t.Errorf("request id %s given twice", id)
		}
		seen[id] = true
		f.hello.mu.Lock()
		got := f.hello.requestIDs[i]
		f.hello.mu.Unlock()
		if got != id {
			t.Errorf("hello got request id %q in the metadata, want the answer's %q", got, id)
		}
	}
}

// The /hello answer is the JSON the map of its fields gave, and encoding
// it takes a few allocations: the answer itself and, with -race, whose
// sync.Pool drops a quarter of what is put back, now and then encoding/json's
// buffer (seen: 3 in make test). The maps took 13-15.
func TestHelloAnswerEncoding(t *testing.T) {
	for _, rsp := range []*hellopb.GreetResponse{
		{Message: "Hello, Ada Lovelace!", Instance: "hello-1", UserInstance: "user-3"},
		{Message: "Hello, Bob!", Instance: "hello-1"},
	} {
		instances := map[string]string{"hello": rsp.Instance}
		if rsp.UserInstance != "" {
			instances["user"] = rsp.UserInstance
		}
		want, _ := json.Marshal(map[string]any{"message": rsp.Message, "instances": instances})
		got, err := json.Marshal(helloAnswer(rsp))
		if err != nil || string(got) != string(want) {
			t.Errorf("answer %s (%v), want %s", got, err, want)
		}
		enc := json.NewEncoder(io.Discard)
		if allocs := testing.AllocsPerRun(100, func() { _ = enc.Encode(helloAnswer(rsp)) }); allocs > 4 {
			t.Errorf("%.0f allocations to encode the answer, want at most 4", allocs)
		}
	}
}

// TestAPIRefusedCountedUnderRoute: a request the rate limit refuses is
// counted under the route it asked for, as the one it was refused on.
// The API names the route for the metrics (metrics.Route) from the one
// match it makes, before the limit.
func TestAPIRefusedCountedUnderRoute(t *testing.T) {
	f := limitedFixture(t, 1, newFakeClock())
	f.users.get = getAda
	f.api.metrics = metrics.New()
	for range 2 {
		f.serve(t, "GET", "/users/ada", nil)
	}
	rec := httptest.NewRecorder()
	f.api.metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`micro_http_requests_total{code="200",route="GET /users/{id}"} 1`,
		`micro_http_requests_total{code="429",route="GET /users/{id}"} 1`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// headerOnly is a ResponseWriter that keeps the headers and drops the rest.
type headerOnly http.Header

func (h headerOnly) Header() http.Header         { return http.Header(h) }
func (h headerOnly) WriteHeader(int)             {}
func (h headerOnly) Write(b []byte) (int, error) { return len(b), nil }

// TestWriteJSONAllocations: writing an answer allocates nothing (Header.Set
// made a slice for its Content-Type every time: 1), and one answer's header
// change does not reach the next answer's.
func TestWriteJSONAllocations(t *testing.T) {
	w := headerOnly{}
	answer := &greetJSON{Message: "Hello, Ada Lovelace!"}
	writeJSON(w, http.StatusOK, answer)
	// encoding/json's state comes from a pool; -race drops a quarter of
	// what is put back, well under one allocation per answer on average.
	if allocs := testing.AllocsPerRun(100, func() { writeJSON(w, http.StatusOK, answer) }); allocs > 0 {
		t.Errorf("%.0f allocations per answer, want none", allocs)
	}
	w.Header().Add("Content-Type", "text/plain")
	next := headerOnly{}
	writeJSON(next, http.StatusOK, answer)
	if got := next.Header().Values("Content-Type"); len(got) != 1 || got[0] != "application/json" {
		t.Errorf("Content-Type %q, want [application/json]", got)
	}
}
