// Package metrics counts what an instance serves and calls, in one
// Prometheus registry per process, served as /metrics on its own port.
//
// go-micro's prometheus wrapper plugin is not used: it registers its
// collectors in client_golang's global registry from init() and labels
// every series with the instance id, so each restart adds series forever.
// Here labels are bounded: endpoints, callee services, result kinds, codes,
// HTTP routes (ServeMux patterns, never raw paths). The instance is the
// target Prometheus scrapes, so it needs no label of ours.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"

	"github.com/example/micro-starter/pkg/wrappers"
)

// Metrics holds one process's collectors and the registry they are in.
type Metrics struct {
	Registry *prometheus.Registry

	serverRequests *prometheus.CounterVec   // endpoint, code
	serverDuration *prometheus.HistogramVec // endpoint
	inFlight       prometheus.Gauge

	clientCalls    *prometheus.CounterVec   // service, endpoint, result
	clientDuration *prometheus.HistogramVec // service, endpoint
	clientAttempts *prometheus.CounterVec   // service, endpoint, result

	clientInFlight prometheus.Gauge
	circuits       *circuits

	httpRequests *prometheus.CounterVec   // route, code
	httpDuration *prometheus.HistogramVec // route

	registrations *prometheus.CounterVec // result
	staleLookups  prometheus.Counter

	// The series the hot paths count in, found by their labels
	// (children.go).
	served        *children[[2]string, prometheus.Counter]  // endpoint, code
	servedTime    *children[string, prometheus.Observer]    // endpoint
	calls         *children[[3]string, prometheus.Counter]  // service, endpoint, result
	callTime      *children[[2]string, prometheus.Observer] // service, endpoint
	attempts      *children[[3]string, prometheus.Counter]  // service, endpoint, result
	httpServed    *children[routeCode, prometheus.Counter]
	httpServeTime *children[string, prometheus.Observer] // route
}

// New returns collectors registered in a new registry, with the Go runtime
// and process collectors beside them.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		serverRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "micro_server_requests_total",
			Help: "RPC requests handled, by endpoint and status code (200 if the handler succeeded, else the go-micro error code).",
		}, []string{"endpoint", "code"}),
		serverDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "micro_server_request_duration_seconds",
			Help:    "Time RPC handlers took, by endpoint.",
			Buckets: prometheus.DefBuckets,
		}, []string{"endpoint"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "micro_server_requests_in_flight",
			Help: "RPC handlers running now.",
		}),
		clientCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "micro_client_calls_total",
			Help: "Calls to other services, retries included in one call, by callee, endpoint and result (ok, request_error, caller, network, timeout, circuit_open, callee).",
		}, []string{"service", "endpoint", "result"}),
		clientDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "micro_client_call_duration_seconds",
			Help:    "Time calls to other services took, all attempts together.",
			Buckets: prometheus.DefBuckets,
		}, []string{"service", "endpoint"}),
		clientAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "micro_client_attempts_total",
			Help: "Attempts on one instance each; attempts beyond calls are retries. By callee, endpoint and result.",
		}, []string{"service", "endpoint", "result"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "micro_http_requests_total",
			Help: "HTTP requests, by route (the ServeMux pattern, \"none\" when no route matched) and status code.",
		}, []string{"route", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "micro_http_request_duration_seconds",
			Help:    "Time HTTP requests took, by route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
		clientInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "micro_client_calls_in_flight",
			Help: "Calls to other services waiting for an answer now.",
		}),
		circuits: newCircuits(),
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "micro_registry_registrations_total",
			Help: "Registrations of this instance in the registry (the first and each renewal), by result (ok, error).",
		}, []string{"result"}),
		staleLookups: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "micro_registry_stale_lookups_total",
			Help: "Registry lookups answered from the last good answer because the registry failed or listed no instance.",
		}),
	}
	m.served = newChildren(func(l [2]string) prometheus.Counter { return m.serverRequests.WithLabelValues(l[0], l[1]) })
	m.servedTime = newChildren(func(endpoint string) prometheus.Observer { return m.serverDuration.WithLabelValues(endpoint) })
	m.calls = newChildren(func(l [3]string) prometheus.Counter {
		if l[2] != "caller" { // the call reached the breaker, which has a circuit for it
			m.circuits.seen(l[0], l[1])
		}
		return m.clientCalls.WithLabelValues(l[0], l[1], l[2])
	})
	m.callTime = newChildren(func(l [2]string) prometheus.Observer { return m.clientDuration.WithLabelValues(l[0], l[1]) })
	m.attempts = newChildren(func(l [3]string) prometheus.Counter { return m.clientAttempts.WithLabelValues(l[0], l[1], l[2]) })
	m.httpServed = newChildren(func(l routeCode) prometheus.Counter {
		return m.httpRequests.WithLabelValues(l.route, strconv.Itoa(l.code))
	})
	m.httpServeTime = newChildren(func(route string) prometheus.Observer { return m.httpDuration.WithLabelValues(route) })
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.serverRequests, m.serverDuration, m.inFlight,
		m.clientCalls, m.clientDuration, m.clientAttempts,
		m.httpRequests, m.httpDuration,
		m.clientInFlight, m.circuits, m.registrations, m.staleLookups,
	)
	return m
}

// Handler serves the registry's metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// HandlerWrapper counts each RPC request the server handles.
//
// The wrappers here keep their own stack frames small while the layers
// inside them run, and count in a function of their own after the call:
// each request runs on a new goroutine whose stack starts small, and every
// few hundred bytes a wrapper holds across the call can make the runtime
// copy that stack to a larger one once more per request, which cost more
// CPU than the counting (docs/performance.md, issue 15).
func (m *Metrics) HandlerWrapper() server.HandlerWrapper {
	return func(next server.HandlerFunc) server.HandlerFunc {
		return func(ctx context.Context, req server.Request, rsp interface{}) error {
			m.inFlight.Inc()
			defer m.inFlight.Dec()
			start := time.Now()
			err := next(ctx, req, rsp)
			m.handled(req.Endpoint(), start, err)
			return err
		}
	}
}

//go:noinline
func (m *Metrics) handled(endpoint string, start time.Time, err error) {
	m.servedTime.get(endpoint).Observe(time.Since(start).Seconds())
	m.served.get([2]string{endpoint, code(err)}).Inc()
}

// code is the status a handler answered: 200, or its go-micro error code
// (500 for a plain error, as go-micro answers it).
func code(err error) string {
	if err == nil {
		return "200"
	}
	if e := merrors.FromError(err); e.Code != 0 {
		return strconv.Itoa(int(e.Code))
	}
	return "500"
}

// ClientWrapper counts logical calls: put it outermost, so it sees what the
// caller gets, circuit open included.
func (m *Metrics) ClientWrapper() client.Wrapper {
	return func(c client.Client) client.Client { return &countingClient{Client: c, m: m} }
}

type countingClient struct {
	client.Client
	m *Metrics
}

func (c *countingClient) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	c.m.clientInFlight.Inc()
	defer c.m.clientInFlight.Dec()
	start := time.Now()
	err := c.Client.Call(ctx, req, rsp, opts...)
	c.m.called(ctx, req, start, err)
	return err
}

//go:noinline
func (m *Metrics) called(ctx context.Context, req client.Request, start time.Time, err error) {
	service, endpoint := req.Service(), req.Endpoint()
	m.callTime.get([2]string{service, endpoint}).Observe(time.Since(start).Seconds())
	m.calls.get([3]string{service, endpoint, Result(ctx, err)}).Inc()
}

// CallWrapper counts attempts, one per instance tried: put it innermost.
func (m *Metrics) CallWrapper() client.CallWrapper {
	return func(next client.CallFunc) client.CallFunc {
		return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
			err := next(ctx, node, req, rsp, opts)
			m.attempted(ctx, req, err)
			return err
		}
	}
}

//go:noinline
func (m *Metrics) attempted(ctx context.Context, req client.Request, err error) {
	result := "ok"
	if err != nil {
		// ctx here is bounded by the attempt timeout: an attempt that ran
		// out of it is a timeout, not a caller giving up.
		result = Result(context.WithoutCancel(ctx), err)
	}
	m.attempts.get([3]string{req.Service(), req.Endpoint(), result}).Inc()
}

// Result names who a call's failure is to blame on (wrappers.Classify),
// with two network failures told apart: a timeout, and a circuit the
// breaker holds open.
func Result(ctx context.Context, err error) string {
	if err == nil {
		return "ok"
	}
	f := wrappers.Classify(ctx, err)
	if f == wrappers.NoFault {
		return "request_error" // the callee answered that the request was wrong: a 4xx
	}
	if e, ok := wrappers.Error(err); ok {
		switch {
		case strings.HasSuffix(e.Detail, ": circuit open"): // wrappers' breakerError
			return "circuit_open"
		case e.Code == http.StatusRequestTimeout && f != wrappers.CallerFault:
			return "timeout"
		}
	}
	switch f {
	case wrappers.CallerFault:
		return "caller"
	case wrappers.NetworkFault:
		return "network"
	default:
		return "callee"
	}
}

// HTTP counts the requests h serves by route: h names the route of each
// request with Route once it has matched it, so that a route is matched
// once; a request h names none for counts as "none".
func (m *Metrics) HTTP(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK, route: "none"}
		h.ServeHTTP(sw, r)
		m.httpServeTime.get(sw.route).Observe(time.Since(start).Seconds())
		m.httpServed.get(routeCode{sw.route, sw.code}).Inc()
	})
}

// Route tells HTTP the route, a ServeMux pattern (never a path: it is a
// label value), of the request w answers; w is the writer HTTP passed on.
// Without HTTP around the handler it does nothing.
func Route(w http.ResponseWriter, pattern string) {
	if sw, ok := w.(*statusWriter); ok && pattern != "" {
		sw.route = pattern
	}
}

type routeCode struct {
	route string
	code  int
}

type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
	route string
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// StaleLookup counts a lookup answered from the cache: the hook for
// discovery.StaleOnError, which calls it with what it logs.
func (m *Metrics) StaleLookup() { m.staleLookups.Inc() }

// Registrations counts each registration r makes, and its result.
func (m *Metrics) Registrations(r registry.Registry) registry.Registry {
	return &countingRegistry{Registry: r, m: m}
}

type countingRegistry struct {
	registry.Registry
	m *Metrics
}

func (r *countingRegistry) Register(s *registry.Service, opts ...registry.RegisterOption) error {
	err := r.Registry.Register(s, opts...)
	result := "ok"
	if err != nil {
		result = "error"
	}
	r.m.registrations.WithLabelValues(result).Inc()
	return err
}
