package metrics

import "sync"

// children keeps the series of one vector by their label values, so that
// a call finds its series with one map lookup: WithLabelValues checks and
// hashes the labels and searches the vector on every call. A series is
// made the first time its labels are used, as WithLabelValues makes it;
// label values here are bounded (services, endpoints, results, codes,
// routes), and so is the map.
type children[K comparable, M any] struct {
	mu   sync.RWMutex
	m    map[K]M
	make func(K) M
}

func newChildren[K comparable, M any](make func(K) M) *children[K, M] {
	return &children[K, M]{m: map[K]M{}, make: make}
}

func (c *children[K, M]) get(k K) M {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok = c.m[k]; !ok {
		v = c.make(k)
		c.m[k] = v
	}
	return v
}
