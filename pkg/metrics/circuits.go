package metrics

import (
	"sync"

	hystrixgo "github.com/afex/hystrix-go/hystrix"
	"github.com/prometheus/client_golang/prometheus"
)

// circuits reports, when scraped, whether each circuit the client has used
// is open. The breaker (wrappers.Breaker) keeps one hystrix circuit per
// callee endpoint, named "<service>.<endpoint>", in hystrix-go's
// process-wide table; the set is bounded by the endpoints called.
type circuits struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	// names: "<service>.<endpoint>" -> its labels
	names map[string][2]string
	known map[[2]string]struct{} // the labels in names
}

func newCircuits() *circuits {
	return &circuits{
		desc: prometheus.NewDesc("micro_client_circuit_open",
			"1 while the breaker's circuit for a callee endpoint is open (calls rejected), else 0.",
			[]string{"service", "endpoint"}, nil),
		names: map[string][2]string{},
		known: map[[2]string]struct{}{},
	}
}

// seen runs on every call: it looks the circuit up by its parts, so that a
// call known already builds no name.
func (c *circuits) seen(service, endpoint string) {
	key := [2]string{service, endpoint}
	c.mu.Lock()
	if _, ok := c.known[key]; !ok {
		c.known[key] = struct{}{}
		c.names[service+"."+endpoint] = key
	}
	c.mu.Unlock()
}

func (c *circuits) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *circuits) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, l := range c.names {
		cb, _, err := hystrixgo.GetCircuit(name)
		if err != nil {
			continue
		}
		open := 0.0
		// IsOpen opens a circuit whose errors are past the threshold, as
		// the next call would; AllowRequest would spend a half-open probe.
		if cb.IsOpen() {
			open = 1
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, open, l[0], l[1])
	}
}
