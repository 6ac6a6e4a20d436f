package service

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
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
	svcs, err := svc.Registry().GetService("test")
	if err != nil {
		t.Fatal(err)
	}
	address := svcs[0].Nodes[0].Metadata[MetricsKey]
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
