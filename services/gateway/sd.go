package main

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"go-micro.dev/v4/registry"

	"github.com/example/micro-starter/pkg/discovery"
	"github.com/example/micro-starter/pkg/service"
)

// sdTarget is one group of Prometheus's HTTP service discovery
// (http_sd_configs): the addresses to scrape and labels for them.
type sdTarget struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// sdTargets serves, from the registry, every instance that publishes a
// metrics address, grouped by service: how Prometheus finds instances when
// it has no discovery of its own for the registry (etcd). It is served on
// the metrics port, never on the public API: it lists every instance.
// Each answer waits at most timeout on the registry: a registry that hangs
// must not pile up requests, which Prometheus repeats every refresh.
func sdTargets(reg registry.Registry, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var targets []sdTarget
		err := discovery.Call(r.Context(), timeout, func() (err error) {
			targets, err = listTargets(reg)
			return err
		})
		if err != nil {
			// Prometheus keeps the targets it had when discovery fails.
			http.Error(w, "registry: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(targets)
	})
}

func listTargets(reg registry.Registry) ([]sdTarget, error) {
	services, err := reg.ListServices()
	if err != nil {
		return nil, err
	}
	targets := []sdTarget{} // Prometheus wants [], not null
	seen := map[string]bool{}
	for _, s := range services {
		if seen[s.Name] {
			continue
		}
		seen[s.Name] = true
		versions, err := reg.GetService(s.Name)
		if err != nil {
			return nil, err
		}
		t := sdTarget{Labels: map[string]string{"service": s.Name}}
		for _, v := range versions {
			for _, n := range v.Nodes {
				if a := n.Metadata[service.MetricsKey]; a != "" {
					t.Targets = append(t.Targets, a)
				}
			}
		}
		if len(t.Targets) > 0 {
			slices.Sort(t.Targets)
			targets = append(targets, t)
		}
	}
	slices.SortFunc(targets, func(a, b sdTarget) int { return strings.Compare(a.Labels["service"], b.Labels["service"]) })
	return targets, nil
}
