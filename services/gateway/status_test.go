package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/pkg/service"
	"github.com/example/micro-starter/pkg/service/servicetest"
	hellopb "github.com/example/micro-starter/services/hello/proto"
)

// statusFixture is the status page over a memory registry with user x2 and
// hello x1, an outlier record and circuit gauges the test sets.
type statusFixture struct {
	st       *status
	circuits *prometheus.GaugeVec
	mu       sync.Mutex
	ejected  map[string]time.Time
}

func newStatusFixture(t *testing.T) *statusFixture {
	t.Helper()
	reg := registry.NewMemoryRegistry()
	for _, s := range []*registry.Service{
		{Name: "user", Version: "latest", Nodes: []*registry.Node{
			{Id: "user-2", Address: "127.0.0.1:2"}, {Id: "user-1", Address: "127.0.0.1:1"},
		}},
		{Name: "hello", Version: "latest", Nodes: []*registry.Node{{Id: "hello-1", Address: "127.0.0.1:3"}}},
	} {
		if err := reg.Register(s); err != nil {
			t.Fatal(err)
		}
	}
	f := &statusFixture{ejected: map[string]time.Time{}}
	// The gauge pkg/metrics reports per circuit, as the page reads it.
	f.circuits = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "micro_client_circuit_open"}, []string{"service", "endpoint"})
	f.circuits.WithLabelValues("user", "User.Get").Set(0)
	pr := prometheus.NewRegistry()
	pr.MustRegister(f.circuits)
	f.st = newStatus(reg, time.Second, func() map[string]time.Time {
		f.mu.Lock()
		defer f.mu.Unlock()
		out := map[string]time.Time{}
		for k, v := range f.ejected {
			out[k] = v
		}
		return out
	}, pr, "user", "hello")
	return f
}

func (f *statusFixture) eject(id string, until time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ejected[id] = until
}

func TestStatusJSON(t *testing.T) {
	f := newStatusFixture(t)
	until := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	f.eject("user-2", until)
	f.circuits.WithLabelValues("user", "User.Get").Set(1)
	f.circuits.WithLabelValues("hello", "Hello.Greet").Set(0)
	// Two attempts to user-1 (one failed at the instance), one to user-2
	// that the callee rejected as a bad request: not the instance's fault.
	call := f.st.calls.wrap(func(_ context.Context, n *registry.Node, _ client.Request, _ interface{}, _ client.CallOptions) error {
		switch n.Id {
		case "user-2":
			return merrors.BadRequest("user", "no such user")
		}
		return nil
	})
	failing := f.st.calls.wrap(func(context.Context, *registry.Node, client.Request, interface{}, client.CallOptions) error {
		return merrors.InternalServerError("user", "boom")
	})
	ctx := context.Background()
	_ = call(ctx, &registry.Node{Id: "user-1"}, nil, nil, client.CallOptions{})
	_ = failing(ctx, &registry.Node{Id: "user-1"}, nil, nil, client.CallOptions{})
	_ = call(ctx, &registry.Node{Id: "user-2"}, nil, nil, client.CallOptions{})

	rec := httptest.NewRecorder()
	mux := http.NewServeMux()
	f.st.register(mux.Handle)
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/status.json", nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	var got statusReport
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	per := statusWindow.Seconds()
	want := []serviceStatus{
		{Name: "user", Instances: []instanceStatus{
			{ID: "user-1", Address: "127.0.0.1:1", CallsPerSecond: 2 / per, Errors: 1},
			{ID: "user-2", Address: "127.0.0.1:2", EjectedUntil: &until, CallsPerSecond: 1 / per},
		}, Circuits: []circuitStatus{{Endpoint: "User.Get", Open: true}}},
		{Name: "hello", Instances: []instanceStatus{{ID: "hello-1", Address: "127.0.0.1:3"}},
			Circuits: []circuitStatus{{Endpoint: "Hello.Greet", Open: false}}},
	}
	if !reflect.DeepEqual(got.Services, want) {
		t.Errorf("services\n got %s\nwant %s", js(got.Services), js(want))
	}
}

func js(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestStatusForgetsIdleInstances(t *testing.T) {
	now := time.Unix(1000, 0)
	a := newAttempts(func() time.Time { return now })
	a.record("a", true)
	now = now.Add(statusWindow)
	if r, failed := a.rate("a"); r != 0 || failed != 0 {
		t.Errorf("after the window: %v calls/s, %d errors; want 0, 0", r, failed)
	}
	now = now.Add(statusForget)
	a.record("b", false)
	if _, ok := a.nodes["a"]; ok || len(a.nodes) != 1 {
		t.Errorf("instances kept: %v; want only b", len(a.nodes))
	}
}

// TestStatusPageInBrowser loads /status in headless Chromium and reads
// what its script rendered; then, in one page load, an instance gets
// ejected and a circuit opens after the page's first fetch, and the page
// shows it: the script refreshes on its own.
func TestStatusPageInBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("no chromium (make tools installs it on Debian)")
	}
	f := newStatusFixture(t)
	mux := http.NewServeMux()
	f.st.register(mux.Handle)
	var change sync.Once
	var armed atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r)
		if r.URL.Path == "/status.json" && armed.Load() {
			change.Do(func() { // after the first answer the page got
				f.eject("user-2", time.Now().Add(time.Hour))
				f.circuits.WithLabelValues("user", "User.Get").Set(1)
			})
		}
	}))
	t.Cleanup(srv.Close)
	dom := func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// Virtual time: the page runs 5 s (its script fetches every
		// second), not counting time waiting on the network.
		out, err := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu",
			"--user-data-dir="+t.TempDir(), "--virtual-time-budget=5000",
			"--dump-dom", srv.URL+"/status").Output()
		return string(out), err
	}
	lacks := func(page string, want ...string) error {
		for _, w := range want {
			if !strings.Contains(page, w) {
				return errors.New("page lacks " + w + ":\n" + page)
			}
		}
		return nil
	}
	// The rows only exist once the script has run.
	poll.Eventually(t, time.Minute, func() error {
		page, err := dom()
		if err != nil {
			return fmt.Errorf("chromium: %w", err)
		}
		return lacks(page,
			"<td>user-1</td><td>127.0.0.1:1</td><td class=\"ok\">in rotation</td>",
			"<td>user-2</td><td>127.0.0.1:2</td><td class=\"ok\">in rotation</td>",
			"<td>hello-1</td>",
			"<td>User.Get</td><td class=\"ok\">closed</td>",
		)
	})

	armed.Store(true)
	page, err := dom()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	if err := lacks(page,
		"<td>user-1</td><td>127.0.0.1:1</td><td class=\"ok\">in rotation</td>",
		"<td>user-2</td><td>127.0.0.1:2</td><td class=\"bad\">ejected until ",
		"<td>User.Get</td><td class=\"bad\">open</td>",
	); err != nil {
		t.Error(err)
	}
}

// TestStatusOnRealClient reads the status from what a service built as
// main builds it holds: its registry, outlier record and metrics, with the
// attempts of concurrent calls through its client counted per instance.
func TestStatusOnRealClient(t *testing.T) {
	cfg := service.DefaultConfig("hello")
	cfg.Registry.Name = "memory"
	cfg.ServerAddress = "127.0.0.1:0"
	cfg.Drain = 0
	svc, err := service.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := hellopb.RegisterHelloServiceHandler(svc.Server(), &recordingHello{}); err != nil {
		t.Fatal(err)
	}
	servicetest.MustRun(t, svc)
	st := newStatus(svc.Registry(), time.Second, svc.Outliers().EjectedNow, svc.Metrics().Registry, "hello")
	hello := hellopb.NewHelloService("hello", st.Count(svc.Client()))

	const workers, each = 4, 5
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := hello.Greet(context.Background(), &hellopb.GreetRequest{Name: "Bob"}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()

	got := st.report(context.Background()).Services
	if len(got) != 1 || len(got[0].Instances) != 1 {
		t.Fatalf("services %s, want hello with one instance", js(got))
	}
	in := got[0].Instances[0]
	if want := workers * each / statusWindow.Seconds(); in.CallsPerSecond != want || in.Errors != 0 || in.EjectedUntil != nil {
		t.Errorf("instance %s: want %v calls/s, no errors, not ejected", js(in), want)
	}
	if want := []circuitStatus{{Endpoint: "HelloService.Greet"}}; !reflect.DeepEqual(got[0].Circuits, want) {
		t.Errorf("circuits %s, want %s", js(got[0].Circuits), js(want))
	}
}

// optionsClient is a client.Client whose Call keeps the options it is
// given and returns.
type optionsClient struct {
	client.Client
	opts []client.CallOption // the last call's
}

func (c *optionsClient) Call(_ context.Context, _ client.Request, _ interface{}, opts ...client.CallOption) error {
	c.opts = opts
	return nil
}

// TestCountAllocations: counting adds its call wrapper to every call made
// through Count's client, at the cost of the one slice that carries it
// (the option is made once: made per call, with the method value it
// wraps, it took 4 allocations in all).
func TestCountAllocations(t *testing.T) {
	st := newStatus(nil, time.Second, nil, nil)
	inner := &optionsClient{}
	c := st.Count(inner)
	ctx := context.Background()
	if err := c.Call(ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	var o client.CallOptions
	for _, opt := range inner.opts {
		opt(&o)
	}
	if len(o.CallWrappers) != 1 {
		t.Fatalf("%d call wrappers, want 1", len(o.CallWrappers))
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = c.Call(ctx, nil, nil) }); allocs > 1 {
		t.Errorf("%.0f allocations per call, want at most 1", allocs)
	}
}
