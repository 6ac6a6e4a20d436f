package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"

	"github.com/example/micro-starter/pkg/discovery"
	"github.com/example/micro-starter/pkg/wrappers"
)

// The status page (GET /status) and its data (GET /status.json): the
// callees' instances as the registry lists them, which the gateway's client
// holds ejected and until when, each circuit's state, and calls per second
// and errors per instance as the gateway's own client saw them. Served on
// the metrics port, like /sd/targets: it names every instance and its
// internal address, which the public API must not.

//go:embed status.html
var statusHTML string

var statusPage = template.Must(template.New("status").Parse(statusHTML))

// statusWindow is how far back the per-instance rates look; an instance
// not called for statusForget is dropped, so the counts stay bounded.
const (
	statusWindow = 10 * time.Second
	statusForget = time.Minute
)

type statusReport struct {
	Time     time.Time       `json:"time"`
	Window   float64         `json:"window_seconds"` // what calls_per_second and errors cover
	Services []serviceStatus `json:"services"`
}

type serviceStatus struct {
	Name      string           `json:"name"`
	Error     string           `json:"error,omitempty"` // the registry lookup's
	Instances []instanceStatus `json:"instances"`
	Circuits  []circuitStatus  `json:"circuits"`
}

type instanceStatus struct {
	ID             string     `json:"id"`
	Address        string     `json:"address"`
	EjectedUntil   *time.Time `json:"ejected_until,omitempty"`
	CallsPerSecond float64    `json:"calls_per_second"`
	Errors         int        `json:"errors"`
}

type circuitStatus struct {
	Endpoint string `json:"endpoint"`
	Open     bool   `json:"open"`
}

// status gathers the page's data from the registry, the client's outlier
// record, the circuit gauges the metrics registry already reports
// (micro_client_circuit_open) and the attempts counted by Count.
type status struct {
	reg      registry.Registry
	timeout  time.Duration // on each registry lookup
	services []string
	ejected  func() map[string]time.Time // wrappers.Outliers.EjectedNow
	gather   prometheus.Gatherer
	calls    *attempts
}

func newStatus(reg registry.Registry, timeout time.Duration, ejected func() map[string]time.Time, gather prometheus.Gatherer, services ...string) *status {
	return &status{reg: reg, timeout: timeout, services: services, ejected: ejected, gather: gather, calls: newAttempts(time.Now)}
}

// register serves GET /status and GET /status.json on mux.
func (s *status) register(handle func(pattern string, h http.Handler)) {
	handle("GET /status", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = statusPage.Execute(w, s.services)
	}))
	handle("GET /status.json", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(s.report(r.Context()))
	}))
}

func (s *status) report(ctx context.Context) statusReport {
	ejected := s.ejected()
	circuits := s.circuits()
	out := statusReport{Time: time.Now().UTC(), Window: statusWindow.Seconds(), Services: []serviceStatus{}}
	for _, name := range s.services {
		svc := serviceStatus{Name: name, Instances: []instanceStatus{}, Circuits: circuits[name]}
		if svc.Circuits == nil {
			svc.Circuits = []circuitStatus{}
		}
		var versions []*registry.Service
		err := discovery.Call(ctx, s.timeout, func() (err error) {
			versions, err = s.reg.GetService(name)
			return err
		})
		if err != nil && err != registry.ErrNotFound {
			svc.Error = err.Error()
		}
		for _, v := range versions {
			for _, n := range v.Nodes {
				in := instanceStatus{ID: n.Id, Address: n.Address}
				if until, ok := ejected[n.Id]; ok {
					until = until.UTC()
					in.EjectedUntil = &until
				}
				in.CallsPerSecond, in.Errors = s.calls.rate(n.Id)
				svc.Instances = append(svc.Instances, in)
			}
		}
		slices.SortFunc(svc.Instances, func(a, b instanceStatus) int { return strings.Compare(a.ID, b.ID) })
		out.Services = append(out.Services, svc)
	}
	return out
}

// circuits reads the breaker's state per callee endpoint from the gauges
// pkg/metrics reports at scrape, rather than from hystrix a second way.
func (s *status) circuits() map[string][]circuitStatus {
	out := map[string][]circuitStatus{}
	families, err := s.gather.Gather()
	if err != nil {
		return out
	}
	for _, f := range families {
		if f.GetName() != "micro_client_circuit_open" {
			continue
		}
		for _, m := range f.GetMetric() {
			var svc, endpoint string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "service":
					svc = l.GetValue()
				case "endpoint":
					endpoint = l.GetValue()
				}
			}
			out[svc] = append(out[svc], circuitStatus{Endpoint: endpoint, Open: m.GetGauge().GetValue() == 1})
		}
	}
	for _, cs := range out {
		slices.SortFunc(cs, func(a, b circuitStatus) int { return strings.Compare(a.Endpoint, b.Endpoint) })
	}
	return out
}

// Count wraps a client so that each attempt is counted against the
// instance it went to (the attempt's call wrapper knows the node).
func (s *status) Count(c client.Client) client.Client {
	return countingClient{Client: c, count: client.WithCallWrapper(s.calls.wrap)}
}

type countingClient struct {
	client.Client
	// count adds the counting call wrapper to a call's options: made once,
	// as the method value and the option each allocate on every call.
	count client.CallOption
}

func (c countingClient) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	return c.Client.Call(ctx, req, rsp, append(opts, c.count)...)
}

// attempts keeps, per instance, attempts and failures in one-second
// buckets over statusWindow.
type attempts struct {
	now   func() time.Time
	mu    sync.Mutex
	nodes map[string]*buckets
}

type buckets struct {
	last   time.Time // last attempt, to forget the instance
	second [int(statusWindow / time.Second)]struct {
		at            int64 // unix second the counts are for
		calls, failed int
	}
}

func newAttempts(now func() time.Time) *attempts {
	return &attempts{now: now, nodes: map[string]*buckets{}}
}

func (a *attempts) wrap(next client.CallFunc) client.CallFunc {
	return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
		err := next(ctx, node, req, rsp, opts)
		// An error the caller caused, or a callee's 4xx, is not the instance's.
		f := wrappers.Classify(ctx, err)
		a.record(node.Id, f == wrappers.NetworkFault || f == wrappers.CalleeFault)
		return err
	}
}

func (a *attempts) record(id string, failed bool) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for other, b := range a.nodes {
		if now.Sub(b.last) > statusForget {
			delete(a.nodes, other)
		}
	}
	b := a.nodes[id]
	if b == nil {
		b = &buckets{}
		a.nodes[id] = b
	}
	b.last = now
	sec := now.Unix()
	s := &b.second[sec%int64(len(b.second))]
	if s.at != sec {
		s.at, s.calls, s.failed = sec, 0, 0
	}
	s.calls++
	if failed {
		s.failed++
	}
}

// rate is the attempts per second and the failures over the last window.
func (a *attempts) rate(id string) (perSecond float64, failed int) {
	now := a.now().Unix()
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.nodes[id]
	if b == nil {
		return 0, 0
	}
	calls := 0
	for _, s := range b.second {
		if now-s.at < int64(len(b.second)) {
			calls += s.calls
			failed += s.failed
		}
	}
	return float64(calls) / statusWindow.Seconds(), failed
}
