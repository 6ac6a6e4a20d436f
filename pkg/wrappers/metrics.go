package wrappers

import (
	"time"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
)

// DefaultOutliers is the outlier record NewClient makes: an instance that
// failed outlierFailures calls in a row goes last for outlierCooldown.
func DefaultOutliers() *Outliers { return NewOutliers(outlierFailures, outlierCooldown) }

// NewObservedClient is NewClient with the outlier record given, so that
// the caller can report which instances it holds ejected (pkg/metrics).
func NewObservedClient(reg registry.Registry, c Config, outliers *Outliers, extra ...client.Option) (client.Client, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return newClient(reg, c, outliers, extra...), nil
}

// EjectedNow lists the instances in their cooldown now (node id -> when it
// ends): at most the instances the client calls.
func (o *Outliers) EjectedNow() map[string]time.Time {
	now := time.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]time.Time{}
	for id, h := range o.nodes {
		if now.Before(h.ejectedUntil) {
			out[id] = h.ejectedUntil
		}
	}
	return out
}
