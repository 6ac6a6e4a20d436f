package wrappers

import (
	"context"
	"sync"
	"time"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
)

// Outliers is passive outlier detection per instance. The breaker counts
// failures per endpoint and retries never repeat an error a service
// answered, so one sick instance of two (answering every call with a 500)
// would fail half of all calls without opening the circuit. Outliers
// watches the outcome of every attempt on every instance: after
// Consecutive failures in a row (a 5xx answered by the instance, or no
// answer at all) the instance goes last in the order of every call for
// Cooldown. It is never removed: when every other instance has failed a
// call, the call still tries it. After the cooldown one more failure ejects
// it again; one success clears it.
type Outliers struct {
	Consecutive int
	Cooldown    time.Duration

	mu    sync.Mutex
	nodes map[string]*nodeHealth // node id -> health
}

type nodeHealth struct {
	failures     int
	ejectedUntil time.Time
}

// NewOutliers ejects an instance after consecutive failures for cooldown.
func NewOutliers(consecutive int, cooldown time.Duration) *Outliers {
	return &Outliers{Consecutive: consecutive, Cooldown: cooldown, nodes: map[string]*nodeHealth{}}
}

// Record is the call wrapper that sees the outcome of each attempt.
func (o *Outliers) Record(next client.CallFunc) client.CallFunc {
	return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
		err := next(ctx, node, req, rsp, opts)
		switch Classify(ctx, err) {
		case NoFault:
			o.observe(node.Id, false)
		case NetworkFault, CalleeFault:
			o.observe(node.Id, true)
		case CallerFault:
			// The caller failed or gave up: nothing learnt about the instance.
		}
		return err
	}
}

func (o *Outliers) observe(id string, failed bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	h := o.nodes[id]
	if !failed {
		if h != nil {
			delete(o.nodes, id)
		}
		return
	}
	if h == nil {
		h = &nodeHealth{}
		o.nodes[id] = h
	}
	h.failures++
	if h.failures >= o.Consecutive {
		h.ejectedUntil = time.Now().Add(o.Cooldown)
	}
}

// Ejected reports whether the instance id is in its cooldown.
func (o *Outliers) Ejected(id string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ejectedLocked(id, time.Now())
}

func (o *Outliers) ejectedLocked(id string, now time.Time) bool {
	h := o.nodes[id]
	return h != nil && now.Before(h.ejectedUntil)
}

// any reports whether some instance has failed lately (ejected or not).
func (o *Outliers) any() bool {
	if o == nil {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.nodes) > 0
}

// last moves the ejected nodes to the end, keeping the order of the rest.
// It runs on every call: when no instance has failed lately (the usual
// case) it returns nodes as they are.
func (o *Outliers) last(nodes []*registry.Node) []*registry.Node {
	if o == nil {
		return nodes
	}
	now := time.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.nodes) == 0 {
		return nodes
	}
	healthy := make([]*registry.Node, 0, len(nodes))
	var ejected []*registry.Node
	for _, n := range nodes {
		if o.ejectedLocked(n.Id, now) {
			ejected = append(ejected, n)
		} else {
			healthy = append(healthy, n)
		}
	}
	return append(healthy, ejected...)
}
