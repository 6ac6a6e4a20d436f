package integration

import (
	"fmt"
	"net/http"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/internal/stack"
)

// TestPrometheusFindsInstances: a real Prometheus finds every instance
// through the registry (the gateway's /sd/targets on its metrics port,
// read from whichever registry is in use), scrapes the request counters
// of each after traffic, and drops an instance that was killed.
func TestPrometheusFindsInstances(t *testing.T) {
	forEachRegistry(t, func(t *testing.T, reg *stack.Registry) {
		metricsAddr := map[string]string{} // instance name -> its --metrics_address
		start := func(service, name string, args ...string) *stack.Node {
			n := mustStartService(t, reg, service, name, append(args, "--metrics_address", "127.0.0.1:0")...)
			metricsAddr[name] = n.MustLoggedAddr(t, "metrics")
			return n
		}
		nodes := []*stack.Node{start("user", "user-1"), start("user", "user-2"), start("hello", "hello"),
			start("gateway", "gateway", "--http_address", "127.0.0.1:0")}
		t.Cleanup(func() { // all at once: each drains for 2 s
			for _, n := range nodes {
				if !n.Exited() {
					n.MustSignal(t, syscall.SIGTERM)
				}
			}
		})

		prom := stack.MustStartPrometheus(t, prometheusConfig(metricsAddr["gateway"]))

		gateway := gatewayURL(t, nodes[3])
		poll.Eventually(t, 20*time.Second, func() error {
			if code := get(t, gateway+"/readyz", nil); code != http.StatusOK {
				return fmt.Errorf("GET /readyz: %d", code)
			}
			return nil
		})
		for range 10 { // round robin: both user instances serve some
			if code := get(t, gateway+"/hello?user_id=ada", nil); code != http.StatusOK {
				t.Fatalf("GET /hello: %d", code)
			}
		}

		// Every instance's requests, as Prometheus scraped them: RPC
		// requests served, and the gateway's HTTP requests.
		want := []string{metricsAddr["gateway"], metricsAddr["hello"], metricsAddr["user-1"], metricsAddr["user-2"]}
		slices.Sort(want)
		poll.Eventually(t, 30*time.Second, func() error {
			got, err := instancesWith(prom, `sum by (instance) (micro_server_requests_total{code="200"}) > 0 or sum by (instance) (micro_http_requests_total{route="GET /hello",code="200"}) > 0`)
			if err != nil {
				return err
			}
			if !slices.Equal(got, want) {
				return fmt.Errorf("instances with requests %v, want %v", got, want)
			}
			return nil
		})

		nodes[1].MustSignal(t, syscall.SIGKILL) // user-2: no deregistration
		killed := metricsAddr["user-2"]
		poll.Eventually(t, 40*time.Second, func() error {
			targets, err := prom.ActiveTargets()
			if err != nil {
				return err
			}
			var instances []string
			for _, tg := range targets {
				instances = append(instances, tg.Labels["instance"])
			}
			if slices.Contains(instances, killed) {
				return fmt.Errorf("killed user-2 (%s) still a target: %v", killed, instances)
			}
			if len(instances) != 3 {
				return fmt.Errorf("targets %v, want the 3 instances still running", instances)
			}
			return nil
		})
	})
}

// prometheusConfig scrapes, every second, every instance the gateway's
// /sd/targets lists from the registry. With Consul, an upstream Prometheus
// could ask Consul itself (consul_sd_configs, the address from
// __meta_consul_service_metadata_metrics_address), but Debian's build has
// no Consul discovery; the gateway's list works with every registry.
func prometheusConfig(gatewayMetrics string) string {
	return fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: micro
    http_sd_configs:
      - url: http://%s/sd/targets
        refresh_interval: 1s
`, gatewayMetrics)
}

// instancesWith returns the sorted instance labels of a query's answer.
func instancesWith(prom *stack.Prometheus, q string) ([]string, error) {
	samples, err := prom.Query(q)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range samples {
		out = append(out, s.Metric["instance"])
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
