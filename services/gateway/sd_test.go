package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"go-micro.dev/v4/registry"

	"github.com/example/micro-starter/pkg/metrics"
	"github.com/example/micro-starter/pkg/service"
)

func TestSDTargetsListsInstancesWithMetrics(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	for _, s := range []*registry.Service{
		{Name: "user", Version: "latest", Nodes: []*registry.Node{
			{Id: "user-2", Address: "127.0.0.1:2", Metadata: map[string]string{service.MetricsKey: "127.0.0.1:9102"}},
			{Id: "user-1", Address: "127.0.0.1:1", Metadata: map[string]string{service.MetricsKey: "127.0.0.1:9101"}},
		}},
		{Name: "hello", Version: "latest", Nodes: []*registry.Node{
			{Id: "hello-1", Address: "127.0.0.1:3", Metadata: map[string]string{service.MetricsKey: "127.0.0.1:9103"}},
		}},
		// Something else in the registry, without metrics: not a target.
		{Name: "legacy", Version: "latest", Nodes: []*registry.Node{{Id: "legacy-1", Address: "127.0.0.1:4"}}},
	} {
		if err := reg.Register(s); err != nil {
			t.Fatal(err)
		}
	}
	rec := httptest.NewRecorder()
	sdTargets(reg, time.Second).ServeHTTP(rec, httptest.NewRequest("GET", "/sd/targets", nil))
	var got []sdTarget
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	want := []sdTarget{
		{Targets: []string{"127.0.0.1:9103"}, Labels: map[string]string{"service": "hello"}},
		{Targets: []string{"127.0.0.1:9101", "127.0.0.1:9102"}, Labels: map[string]string{"service": "user"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("targets %+v, want %+v", got, want)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestHTTPMetricsByRoute(t *testing.T) {
	f := newFixture(t, &fakeUsers{get: getAda}, nil, nil)
	f.api.metrics = metrics.New()
	f.serve(t, "GET", "/users/1", nil)
	f.serve(t, "GET", "/users/2", nil)
	f.serve(t, "GET", "/nowhere", nil)
	rec := httptest.NewRecorder()
	f.api.metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`micro_http_requests_total{code="200",route="GET /users/{id}"} 2`,
		`micro_http_requests_total{code="404",route="none"} 1`,
		`micro_http_request_duration_seconds_count{route="GET /users/{id}"} 2`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(string(body), "/users/1") {
		t.Error("a raw path is a label value")
	}
}

// hangingLister never answers ListServices, like a registry gone silent.
type hangingLister struct {
	registry.Registry
	release chan struct{}
}

func (h hangingLister) ListServices(...registry.ListOption) ([]*registry.Service, error) {
	<-h.release
	return nil, nil
}

func TestSDTargetsBoundedOnAHungRegistry(t *testing.T) {
	reg := hangingLister{Registry: registry.NewMemoryRegistry(), release: make(chan struct{})}
	defer close(reg.release)
	done := make(chan *httptest.ResponseRecorder)
	go func() {
		rec := httptest.NewRecorder()
		sdTargets(reg, 50*time.Millisecond).ServeHTTP(rec, httptest.NewRequest("GET", "/sd/targets", nil))
		done <- rec
	}()
	select {
	case rec := <-done:
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", rec.Code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("GET /sd/targets still waiting on a hung registry")
	}
}
