package service

import (
	"errors"
	"net"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strconv"
	"time"

	"go-micro.dev/v4/server"
	"go-micro.dev/v4/util/addr"

	"github.com/example/micro-starter/pkg/metrics"
)

// MetricsKey is the node metadata key under which an instance publishes
// where its /metrics answers, so Prometheus finds every instance through
// the registry (Consul: __meta_consul_service_metadata_metrics_address).
const MetricsKey = "metrics_address"

// MetricsOff as --metrics_address turns metrics off: nothing listens for
// Prometheus, nothing is published, calls and requests are not counted.
const MetricsOff = "off"

// Metrics is the instance's Prometheus registry and collectors.
func (s *Service) Metrics() *metrics.Metrics { return s.metrics }

// HandleMetrics adds a handler beside /metrics, on the metrics port: for
// what only Prometheus should ask (the gateway's service discovery), kept
// off a public API. Call it before Run.
func (s *Service) HandleMetrics(pattern string, h http.Handler) { s.metricsMux.Handle(pattern, h) }

// serveMetrics binds --metrics_address, serves /metrics there and puts the
// address in the metadata the instance registers with. The default port is
// a free one, so several instances run on one machine (make run); the
// registry says which.
func (s *Service) serveMetrics() (stop func(), err error) {
	listen := s.cfg.MetricsAddress
	if listen == MetricsOff {
		return func() {}, nil
	}
	if listen == "" {
		host, _, _ := net.SplitHostPort(s.cfg.ServerAddress) // checked by Validate
		listen = net.JoinHostPort(host, "0")
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	// An address on every interface is published as the one go-micro
	// publishes for the RPC server: a private address of this machine.
	if host, err = addr.Extract(host); err != nil {
		ln.Close()
		return nil, err
	}
	md := map[string]string{MetricsKey: net.JoinHostPort(host, port)}
	for k, v := range s.server.Options().Metadata {
		md[k] = v
	}
	if err := s.server.Init(server.Metadata(md)); err != nil {
		ln.Close()
		return nil, err
	}
	s.metricsMux.Handle("GET /metrics", s.metrics.Handler())
	if s.cfg.Pprof {
		s.metricsMux.HandleFunc("GET /debug/pprof/profile", cpuProfile)
		s.metricsMux.HandleFunc("GET /debug/pprof/{name}", namedProfile)
	}
	srv := &http.Server{Handler: s.metricsMux, ReadHeaderTimeout: time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics", "err", err)
		}
	}()
	s.log.Info("metrics", "address", ln.Addr().String(), "published", md[MetricsKey])
	return func() { srv.Close() }, nil
}

// cpuProfile answers GET /debug/pprof/profile?seconds=N (default 10) with
// a CPU profile of this process, as net/http/pprof does (which is not
// imported: its init registers on http.DefaultServeMux).
func cpuProfile(w http.ResponseWriter, r *http.Request) {
	secs, err := strconv.Atoi(r.URL.Query().Get("seconds"))
	if err != nil || secs <= 0 || secs > 60 {
		secs = 10
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if err := pprof.StartCPUProfile(w); err != nil {
		http.Error(w, err.Error(), http.StatusConflict) // one at a time
		return
	}
	t := time.NewTimer(time.Duration(secs) * time.Second)
	select {
	case <-t.C:
	case <-r.Context().Done():
		t.Stop()
	}
	pprof.StopCPUProfile()
}

// namedProfile answers GET /debug/pprof/heap, allocs, goroutine, ...
// With gc=1 (as net/http/pprof takes it) a heap profile is taken after a
// collection: its in-use figures are then what the process holds, not
// what it held at the last collection, garbage since then not counted.
func namedProfile(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	p := pprof.Lookup(name)
	if p == nil {
		http.NotFound(w, r)
		return
	}
	if gc, _ := strconv.Atoi(r.URL.Query().Get("gc")); gc > 0 && name == "heap" {
		runtime.GC()
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_ = p.WriteTo(w, 0)
}
