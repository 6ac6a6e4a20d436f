package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	hystrixgo "github.com/afex/hystrix-go/hystrix"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"

	"github.com/example/micro-starter/pkg/wrappers"
)

type request struct {
	server.Request
	endpoint string
}

func (r request) Endpoint() string { return r.endpoint }

func TestServerRequestsByEndpointAndCode(t *testing.T) {
	m := New()
	h := m.HandlerWrapper()(func(ctx context.Context, req server.Request, rsp interface{}) error {
		switch req.Endpoint() {
		case "User.Get":
			return merrors.NotFound("user", "no such user")
		case "User.Crash":
			return errors.New("plain")
		}
		return nil
	})
	for _, ep := range []string{"User.List", "User.List", "User.Get", "User.Crash"} {
		_ = h(context.Background(), request{endpoint: ep}, nil)
	}
	for _, c := range []struct {
		endpoint, code string
		want           float64
	}{{"User.List", "200", 2}, {"User.Get", "404", 1}, {"User.Crash", "500", 1}} {
		if got := testutil.ToFloat64(m.serverRequests.WithLabelValues(c.endpoint, c.code)); got != c.want {
			t.Errorf("micro_server_requests_total{endpoint=%q,code=%q} = %v, want %v", c.endpoint, c.code, got, c.want)
		}
	}
	if got := testutil.CollectAndCount(m.serverDuration); got != 3 {
		t.Errorf("duration series = %d, want 3 (one per endpoint)", got)
	}
	if got := testutil.ToFloat64(m.inFlight); got != 0 {
		t.Errorf("in flight after the calls = %v, want 0", got)
	}
}

type call struct {
	client.Request
	service, endpoint string
}

func (c call) Service() string  { return c.service }
func (c call) Endpoint() string { return c.endpoint }

type stubClient struct {
	client.Client
	err error
}

func (c stubClient) Call(context.Context, client.Request, interface{}, ...client.CallOption) error {
	return c.err
}

func TestClientCallsByResult(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []struct {
		name string
		ctx  context.Context
		err  error
		want string
	}{
		{"ok", context.Background(), nil, "ok"},
		{"the callee says the request is wrong", context.Background(), merrors.NotFound("user", "no"), "request_error"},
		{"the callee fails", context.Background(), merrors.InternalServerError("user", "boom"), "callee"},
		{"no connection", context.Background(), merrors.New("go.micro.client", "connection refused", 503), "network"},
		{"attempt timeout", context.Background(), merrors.New("go.micro.client", "deadline exceeded", 408), "timeout"},
		{"circuit open", context.Background(), merrors.New("go.micro.client", "user.User.Get: circuit open", 503), "circuit_open"},
		{"the caller gave up", canceled, merrors.New("go.micro.client", "context canceled", 408), "caller"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := New()
			cl := m.ClientWrapper()(stubClient{err: c.err})
			_ = cl.Call(c.ctx, call{service: "user", endpoint: "User.Get"}, nil)
			if got := testutil.ToFloat64(m.clientCalls.WithLabelValues("user", "User.Get", c.want)); got != 1 {
				t.Errorf("micro_client_calls_total{result=%q} = %v, want 1", c.want, got)
			}
			if got := testutil.CollectAndCount(m.clientCalls); got != 1 {
				t.Errorf("%d call series, want 1", got)
			}
		})
	}
}

func TestAttemptsCountEachInstanceTried(t *testing.T) {
	m := New()
	attempt := m.CallWrapper()(func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
		if node.Id == "dead" {
			return merrors.New("go.micro.client", "connection refused", 503)
		}
		return nil
	})
	req := call{service: "user", endpoint: "User.Get"}
	for _, id := range []string{"dead", "live"} { // a call that failed over
		_ = attempt(context.Background(), &registry.Node{Id: id}, req, nil, client.CallOptions{})
	}
	// An attempt that ran out of its own time: its context has ended too.
	hung := m.CallWrapper()(func(ctx context.Context, _ *registry.Node, _ client.Request, _ interface{}, _ client.CallOptions) error {
		<-ctx.Done()
		return merrors.New("go.micro.client", "deadline exceeded", 408)
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	_ = hung(ctx, &registry.Node{Id: "hung"}, req, nil, client.CallOptions{})
	for result, want := range map[string]float64{"network": 1, "ok": 1, "timeout": 1} {
		if got := testutil.ToFloat64(m.clientAttempts.WithLabelValues("user", "User.Get", result)); got != want {
			t.Errorf("micro_client_attempts_total{result=%q} = %v, want %v", result, got, want)
		}
	}
}

func TestHTTPByRouteNeverPath(t *testing.T) {
	m := New()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "missing" {
			http.Error(w, "no", http.StatusNotFound)
		}
	})
	// As the gateway does: match, name the route, serve.
	h := m.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := mux.Handler(r)
		Route(w, pattern)
		mux.ServeHTTP(w, r)
	}))
	for _, p := range []string{"/users/1", "/users/2", "/users/missing", "/elsewhere/1"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	for _, c := range []struct {
		route, code string
		want        float64
	}{{"GET /users/{id}", "200", 2}, {"GET /users/{id}", "404", 1}, {"none", "404", 1}} {
		if got := testutil.ToFloat64(m.httpRequests.WithLabelValues(c.route, c.code)); got != c.want {
			t.Errorf("micro_http_requests_total{route=%q,code=%q} = %v, want %v", c.route, c.code, got, c.want)
		}
	}
	if got := testutil.CollectAndCount(m.httpRequests); got != 3 {
		t.Errorf("%d request series, want 3: a path must never be a label value", got)
	}
	if got := testutil.CollectAndCount(m.httpDuration); got != 2 {
		t.Errorf("%d duration series, want 2 (the route and none)", got)
	}
}

// A request, call or attempt that succeeds at an endpoint already seen
// allocates nothing in the wrappers that count it: they run on every hop
// of every request (issue 15's cost). A successful attempt's context was
// copied (context.WithoutCancel) only to be classified as "ok".
func TestCountingAllocatesNothing(t *testing.T) {
	m := New()
	for _, c := range countingCases(m) {
		c.f() // the first one makes the series
		if allocs := testing.AllocsPerRun(100, c.f); allocs != 0 {
			t.Errorf("%s: %.0f allocations, want 0", c.name, allocs)
		}
	}
	if got := testutil.ToFloat64(m.serverRequests.WithLabelValues("Hello.Greet", "200")); got != 102 {
		t.Errorf("requests counted %v, want 102", got)
	}
	if got := testutil.ToFloat64(m.clientCalls.WithLabelValues("user", "UserService.Get", "ok")); got != 102 {
		t.Errorf("calls counted %v, want 102", got)
	}
	if got := testutil.ToFloat64(m.clientAttempts.WithLabelValues("user", "UserService.Get", "ok")); got != 102 {
		t.Errorf("attempts counted %v, want 102", got)
	}
}

func TestHandlerServesTheRegistry(t *testing.T) {
	m := New()
	_ = m.HandlerWrapper()(func(context.Context, server.Request, interface{}) error { return nil })(context.Background(), request{endpoint: "Hello.Say"}, nil)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	rsp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	b, _ := io.ReadAll(rsp.Body)
	for _, want := range []string{`micro_server_requests_total{code="200",endpoint="Hello.Say"} 1`, "go_goroutines", "micro_server_request_duration_seconds_bucket"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestCircuitOpenPerCalleeEndpoint(t *testing.T) {
	m := New()
	cl := m.ClientWrapper()(stubClient{})
	_ = cl.Call(context.Background(), call{service: "metrics-test", endpoint: "Circuit.Open"}, nil)
	open := func() float64 {
		return testutil.ToFloat64(prometheus.Collector(m.circuits))
	}
	if got := open(); got != 0 {
		t.Fatalf("micro_client_circuit_open before any failure = %v, want 0", got)
	}
	name := "metrics-test.Circuit.Open" // the breaker's name for it
	hystrixgo.ConfigureCommand(name, hystrixgo.CommandConfig{RequestVolumeThreshold: 2, ErrorPercentThreshold: 50, SleepWindow: 60000})
	for range 5 {
		_ = hystrixgo.Do(name, func() error { return errors.New("down") }, nil)
	}
	if got := open(); got != 1 {
		t.Fatalf("micro_client_circuit_open after failures = %v, want 1", got)
	}
}

type failingRegistry struct {
	registry.Registry
	err error
}

func (r failingRegistry) Register(*registry.Service, ...registry.RegisterOption) error { return r.err }

func TestRegistrationsByResult(t *testing.T) {
	m := New()
	_ = m.Registrations(failingRegistry{}).Register(&registry.Service{Name: "user"})
	_ = m.Registrations(failingRegistry{err: errors.New("refused")}).Register(&registry.Service{Name: "user"})
	_ = m.Registrations(failingRegistry{err: errors.New("refused")}).Register(&registry.Service{Name: "user"})
	for result, want := range map[string]float64{"ok": 1, "error": 2} {
		if got := testutil.ToFloat64(m.registrations.WithLabelValues(result)); got != want {
			t.Errorf("micro_registry_registrations_total{result=%q} = %v, want %v", result, got, want)
		}
	}
	m.StaleLookup()
	if got := testutil.ToFloat64(m.staleLookups); got != 1 {
		t.Errorf("micro_registry_stale_lookups_total = %v, want 1", got)
	}
}

type blockingClient struct {
	client.Client
	entered, release chan struct{}
}

func (c blockingClient) Call(context.Context, client.Request, interface{}, ...client.CallOption) error {
	close(c.entered)
	<-c.release
	return nil
}

func TestClientCallsInFlight(t *testing.T) {
	m := New()
	b := blockingClient{entered: make(chan struct{}), release: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		_ = m.ClientWrapper()(b).Call(context.Background(), call{service: "user", endpoint: "User.Get"}, nil)
		close(done)
	}()
	<-b.entered
	if got := testutil.ToFloat64(m.clientInFlight); got != 1 {
		t.Errorf("micro_client_calls_in_flight during a call = %v, want 1", got)
	}
	close(b.release)
	<-done
	if got := testutil.ToFloat64(m.clientInFlight); got != 0 {
		t.Errorf("micro_client_calls_in_flight after = %v, want 0", got)
	}
}

func TestEjectedInstancesOnlyWhileEjected(t *testing.T) {
	m := New()
	o := wrappers.NewOutliers(2, time.Hour)
	m.WatchOutliers(o)
	fail := errors.New("unused")
	attempt := o.Record(func(context.Context, *registry.Node, client.Request, interface{}, client.CallOptions) error {
		return fail
	})
	req := call{service: "user", endpoint: "User.Get"}
	try := func(id string, err error) {
		fail = err
		_ = attempt(context.Background(), &registry.Node{Id: id}, req, nil, client.CallOptions{})
	}
	refused := merrors.New("go.micro.client", "connection refused", 503)
	try("user-1", refused)
	try("user-1", refused)
	try("user-2", refused) // one failure: not ejected
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(`
# HELP micro_client_ejected_instance 1 for each callee instance in its outlier cooldown now (tried last after consecutive failures).
# TYPE micro_client_ejected_instance gauge
micro_client_ejected_instance{instance="user-1"} 1
`), "micro_client_ejected_instance"); err != nil {
		t.Fatal(err)
	}
	try("user-1", nil) // a success clears it
	if n, err := testutil.GatherAndCount(m.Registry, "micro_client_ejected_instance"); err != nil || n != 0 {
		t.Fatalf("%d ejected series after the instance answered (%v), want 0", n, err)
	}
}

// Noting the circuit of each call allocates nothing for an endpoint
// already seen: it runs on every call.
func TestCircuitSeenAllocatesNothing(t *testing.T) {
	c := newCircuits()
	c.seen("user", "UserService.Get")
	if allocs := testing.AllocsPerRun(100, func() { c.seen("user", "UserService.Get") }); allocs != 0 {
		t.Errorf("%.0f allocations per call, want 0", allocs)
	}
	if got := c.names["user.UserService.Get"]; got != [2]string{"user", "UserService.Get"} {
		t.Errorf("circuit user.UserService.Get has labels %v", got)
	}
}

// countingCase is one wrapper of m around a layer that does nothing.
type countingCase struct {
	name string
	f    func()
}

// countingCases counts a request served, a call and an attempt, each
// through its wrapper of m, at endpoints that do nothing.
func countingCases(m *Metrics) []countingCase {
	served := m.HandlerWrapper()(func(context.Context, server.Request, interface{}) error { return nil })
	called := m.ClientWrapper()(stubClient{})
	tried := m.CallWrapper()(func(context.Context, *registry.Node, client.Request, interface{}, client.CallOptions) error {
		return nil
	})
	// As interfaces once: boxing them on each call would allocate.
	var sreq server.Request = request{endpoint: "Hello.Greet"}
	var creq client.Request = call{service: "user", endpoint: "UserService.Get"}
	node := &registry.Node{Id: "u1"}
	ctx := context.Background()
	return []countingCase{
		{"request served", func() { _ = served(ctx, sreq, nil) }},
		{"call", func() { _ = called.Call(ctx, creq, nil) }},
		{"attempt", func() { _ = tried(ctx, node, creq, nil, client.CallOptions{}) }},
	}
}
