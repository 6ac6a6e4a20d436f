package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/example/micro-starter/pkg/wrappers"
)

// WatchOutliers reports, when scraped, each instance the client holds
// ejected now (micro_client_ejected_instance{instance="<node id>"} 1). An
// instance id is a label value here because only instances ejected at
// this moment have a series, so their number is bounded by the callees'
// instances; a counter per id would grow with every restart.
func (m *Metrics) WatchOutliers(o *wrappers.Outliers) {
	m.Registry.MustRegister(&ejected{o: o, desc: prometheus.NewDesc("micro_client_ejected_instance",
		"1 for each callee instance in its outlier cooldown now (tried last after consecutive failures).",
		[]string{"instance"}, nil)})
}

type ejected struct {
	o    *wrappers.Outliers
	desc *prometheus.Desc
}

func (e *ejected) Describe(ch chan<- *prometheus.Desc) { ch <- e.desc }

func (e *ejected) Collect(ch chan<- prometheus.Metric) {
	for id := range e.o.EjectedNow() {
		ch <- prometheus.MustNewConstMetric(e.desc, prometheus.GaugeValue, 1, id)
	}
}
