//go:build e2e

package e2e

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/example/micro-starter/internal/stack"
)

// tracedHello sends GET /hello?user_id=ada and returns the request id the
// gateway gave it, which its span carries as the tag request_id.
func (s *composeStack) tracedHello(t *testing.T) string {
	t.Helper()
	rsp, err := s.http.Get(s.gateway + "/hello?user_id=ada")
	if err != nil {
		t.Fatal(err)
	}
	rsp.Body.Close()
	id := rsp.Header.Get("X-Request-Id")
	if rsp.StatusCode != http.StatusOK || id == "" {
		t.Fatalf("GET /hello?user_id=ada: %d, request id %q; want 200 and an id", rsp.StatusCode, id)
	}
	return id
}

// requireTrace checks that Jaeger's query API, on its published port, soon
// has the trace of the request with requestID, with spans from the
// gateway, hello and user: the trace context crossed both hops.
func (s *composeStack) requireTrace(t *testing.T, requestID string) {
	t.Helper()
	// Asked by the gateway span's tag: the stack traces every request,
	// its health checks too, so the gateway has many traces.
	q := url.Values{"service": {"gateway"}, "tags": {`{"request_id":"` + requestID + `"}`}, "lookback": {"1h"}}
	want := []string{"gateway", "hello", "user"}
	eventually(t, 30*time.Second, func() error {
		var rsp struct{ Data []stack.Trace }
		if err := stack.GetJSON(s.http, s.jaeger+"/api/traces?"+q.Encode(), &rsp); err != nil {
			return err
		}
		if len(rsp.Data) != 1 {
			return fmt.Errorf("Jaeger has %d traces of request %s, want 1", len(rsp.Data), requestID)
		}
		tr := rsp.Data[0]
		services := map[string]bool{}
		for _, sp := range tr.Spans {
			services[tr.Service(sp)] = true
		}
		if got := slices.Sorted(maps.Keys(services)); !slices.Equal(got, want) {
			return fmt.Errorf("trace %s of request %s has spans from %v, want %v", tr.TraceID, requestID, got, want)
		}
		t.Logf("Jaeger: trace %s of request %s, %d spans from %v", tr.TraceID, requestID, len(tr.Spans), want)
		return nil
	})
}

// requireMetrics checks that Prometheus, on its published port, soon has
// request counters from every running instance of user, hello and the
// gateway, each under the address its container registered
// (<container IP>:9100), and from no other: it found them through the
// registry (the gateway's /sd/targets) and scraped them.
func (s *composeStack) requireMetrics(t *testing.T) {
	t.Helper()
	prometheus := &stack.Prometheus{URL: s.prometheus}
	want := map[string][]string{} // service -> instances
	for _, service := range []string{"user", "hello", "gateway"} {
		for _, c := range s.containers(t, service) {
			if c.State == "running" {
				want[service] = append(want[service], c.IP+":9100")
			}
		}
		slices.Sort(want[service])
	}
	// Discovery refreshes and scrapes every 5 s: 60 s is for a loaded machine.
	eventually(t, 60*time.Second, func() error {
		got := map[string][]string{}
		// The services' server side, and the gateway's HTTP requests.
		for _, q := range []string{
			`sum by (service, instance) (micro_server_requests_total{service=~"user|hello"})`,
			`sum by (service, instance) (micro_http_requests_total{service="gateway"})`,
		} {
			samples, err := prometheus.Query(q)
			if err != nil {
				return err
			}
			for _, x := range samples {
				if v, _ := x.Value[1].(string); v != "0" {
					got[x.Metric["service"]] = append(got[x.Metric["service"]], x.Metric["instance"])
				}
			}
		}
		for service := range got {
			slices.Sort(got[service])
		}
		if !maps.EqualFunc(got, want, slices.Equal) {
			return fmt.Errorf("Prometheus has request counters from %v, want %v", got, want)
		}
		return nil
	})
	t.Logf("Prometheus: request counters from %v", want)
}

// requireStatusPage checks that the gateway's status page, on its published
// metrics port, lists the user instances the registry has (two).
func (s *composeStack) requireStatusPage(t *testing.T) {
	t.Helper()
	var status struct {
		Services []struct {
			Name      string
			Instances []struct{ ID string }
		}
	}
	stack.MustGetJSON(t, s.http, s.status+"/status.json", &status)
	for _, svc := range status.Services {
		if svc.Name == "user" {
			if len(svc.Instances) != 2 {
				t.Errorf("status page: %d user instances, want 2: %+v", len(svc.Instances), svc)
			}
			return
		}
	}
	t.Errorf("status page lists no user: %+v", status)
}
