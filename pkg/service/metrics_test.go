package service

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go-micro.dev/v4/registry"

	"github.com/example/micro-starter/internal/poll"
)

// The registry says where an instance's /metrics is, and it counts what the
// instance served and what its client called, by endpoint.
func TestMetricsPublishedInRegistry(t *testing.T) {
	svc := mustNew(t, testConfig())
	mustHandle(t, svc, &Echo{})
	start(t, svc)
	mustRegistered(t, svc)
	if err := callEcho(svc); err != nil {
		t.Fatal(err)
	}
	address := mustMetricsAddress(t, svc)
	if !strings.HasPrefix(address, "127.0.0.1:") {
		t.Fatalf("node metadata %s = %q, want an address on 127.0.0.1 (the host of --server_address)", MetricsKey, address)
	}
	rsp, err := http.Get("http://" + address + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	b, _ := io.ReadAll(rsp.Body)
	for _, want := range []string{
		`micro_server_requests_total{code="200",endpoint="Echo.Call"} 1`,
		`micro_client_calls_total{endpoint="Echo.Call",result="ok",service="test"} 1`,
		`micro_client_attempts_total{endpoint="Echo.Call",result="ok",service="test"} 1`,
		`micro_registry_registrations_total{result="ok"}`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestMetricsAddressTakenFailsRun(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	c := testConfig()
	c.MetricsAddress = taken.Addr().String()
	err = mustNew(t, c).Run(t.Context())
	if err == nil || !strings.HasPrefix(err.Error(), "metrics: ") {
		t.Fatalf("Run on a taken metrics port: %v, want a metrics error", err)
	}
}

// failingLookups is a memory registry whose lookups fail once failing is set.
type failingLookups struct {
	registry.Registry
	failing atomic.Bool
}

func (f *failingLookups) GetService(name string, opts ...registry.GetOption) ([]*registry.Service, error) {
	if f.failing.Load() {
		return nil, errors.New("registry down")
	}
	return f.Registry.GetService(name, opts...)
}

// A call the client routes with the cached answer of a failed lookup is
// counted in micro_registry_stale_lookups_total.
func TestStaleLookupsCounted(t *testing.T) {
	c := testConfig()
	c.Client.CacheTTL = time.Millisecond // every call looks up
	reg := &failingLookups{Registry: registry.NewMemoryRegistry()}
	svc := mustNewOn(t, c, reg)
	mustHandle(t, svc, &Echo{})
	start(t, svc)
	poll.Eventually(t, 5*time.Second, func() error { return registeredIn(reg, 1) })
	if err := callEcho(svc); err != nil {
		t.Fatal(err)
	}
	reg.failing.Store(true)
	poll.Eventually(t, 5*time.Second, func() error {
		if err := callEcho(svc); err != nil {
			return err
		}
		if n := counterValue(t, svc, "micro_registry_stale_lookups_total"); n < 1 {
			return fmt.Errorf("micro_registry_stale_lookups_total = %v", n)
		}
		return nil
	})
}

func counterValue(tb testing.TB, svc *Service, name string) float64 {
	tb.Helper()
	families, err := svc.Metrics().Registry.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// --metrics_address off: no /metrics published, and nothing counted (the
// wrappers are not in the chain), while calls work as before.
func TestMetricsOff(t *testing.T) {
	c := testConfig()
	c.MetricsAddress = MetricsOff
	svc := mustNew(t, c)
	mustHandle(t, svc, &Echo{})
	start(t, svc)
	mustRegistered(t, svc)
	if err := callEcho(svc); err != nil {
		t.Fatal(err)
	}
	svcs, err := svc.Registry().GetService("test")
	if err != nil {
		t.Fatal(err)
	}
	if address, ok := svcs[0].Nodes[0].Metadata[MetricsKey]; ok {
		t.Errorf("node metadata %s = %q, want none with metrics off", MetricsKey, address)
	}
	families, err := svc.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		switch f.GetName() {
		case "micro_server_requests_total", "micro_client_calls_total", "micro_client_attempts_total", "micro_registry_registrations_total":
			t.Errorf("%s counted with metrics off: %v", f.GetName(), f.GetMetric())
		}
	}
}

// --pprof serves profiles on the metrics port; without it there are none.
func TestPprofOnlyWhenAsked(t *testing.T) {
	for _, on := range []bool{false, true} {
		c := testConfig()
		c.Pprof = on
		svc := mustNew(t, c)
		start(t, svc)
		mustRegistered(t, svc)
		base := "http://" + mustMetricsAddress(t, svc)
		for _, path := range []string{"/debug/pprof/goroutine", "/debug/pprof/profile?seconds=1"} {
			rsp, err := http.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(rsp.Body)
			rsp.Body.Close()
			// A profile is gzipped protobuf.
			if got := rsp.StatusCode == http.StatusOK && len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b; got != on {
				t.Errorf("--pprof=%v: GET %s: %d with %d bytes, want a profile: %v", on, path, rsp.StatusCode, len(b), on)
			}
		}
	}
}

// A heap profile asked with gc=1 is taken after a collection, so that its
// in-use figures are what the instance holds (how docs/performance.md's
// heap profiles at load are taken); without gc=1 none is forced.
func TestHeapProfileAfterCollection(t *testing.T) {
	c := testConfig()
	c.Pprof = true
	svc := mustNew(t, c)
	start(t, svc)
	mustRegistered(t, svc)
	base := "http://" + mustMetricsAddress(t, svc)
	for _, tc := range []struct {
		query  string
		forced bool
	}{{"", false}, {"?gc=1", true}, {"?gc=0", false}} {
		before := forcedCollections()
		rsp, err := http.Get(base + "/debug/pprof/heap" + tc.query)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rsp.Body)
		rsp.Body.Close()
		if rsp.StatusCode != http.StatusOK || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Fatalf("GET /debug/pprof/heap%s: %d with %d bytes, want a profile", tc.query, rsp.StatusCode, len(b))
		}
		if forced := forcedCollections() > before; forced != tc.forced {
			t.Errorf("GET /debug/pprof/heap%s: collection forced %v, want %v", tc.query, forced, tc.forced)
		}
	}
}

// forcedCollections is the number of collections runtime.GC has run.
func forcedCollections() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// mustMetricsAddress is where the registry says svc's metrics listen.
func mustMetricsAddress(tb testing.TB, svc *Service) string {
	tb.Helper()
	svcs, err := svc.Registry().GetService("test")
	if err != nil {
		tb.Fatal(err)
	}
	return svcs[0].Nodes[0].Metadata[MetricsKey]
}
