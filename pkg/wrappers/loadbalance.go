package wrappers

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"
)

// LoadBalance picks the instances of each call by strategy, and reports a
// service with no instance as a 503.
//
// Every strategy gives each call its own order of instances and walks it,
// so the retries of a call go to instances it has not tried yet, whatever
// other calls do at the same time:
//   - "roundrobin" starts each call at the next instance of the service, so
//     calls spread evenly;
//   - "random" shuffles the instances for each call;
//   - "hash" orders the instances by rendezvous hashing of the call's hash
//     key (WithHashKey), so calls with one key go to one instance, from
//     every caller, and fail over in the same order; calls without a key
//     are round robin.
//
// go-micro's selector.Random draws again for every attempt, and the
// roundrobin wrapper plugin shares one counter between concurrent calls: with
// one of two instances dead, either sends all three attempts of some calls to
// the dead one.
//
// Instances that outliers has ejected go last in every call's order: a key
// picks where its calls start, never which instances they may try, so it
// cannot keep a call on a dead instance nor get round the breaker, which
// sees the call before this.
func LoadBalance(strategy string, outliers *Outliers) client.Wrapper {
	return newBalance(strategy, outliers).wrapper(false)
}

// balance is a strategy's instance order, for every call (order) and for a
// call with a hash key (byKey, "hash" only).
type balance struct {
	order selector.Strategy
	byKey func(key string) client.CallOption
}

func newBalance(strategy string, outliers *Outliers) balance {
	var b balance
	switch strategy {
	case "random":
		b.order = func(services []*registry.Service) selector.Next { return randomOrder(services, outliers) }
	case "hash":
		b.byKey = func(key string) client.CallOption {
			return client.WithSelectOption(selector.WithStrategy(func(services []*registry.Service) selector.Next {
				return walk(outliers.last(rendezvous(key, flatten(services))), 0)
			}))
		}
		fallthrough // calls without a key
	default:
		rr := &roundRobin{outliers: outliers}
		b.order = rr.order
	}
	return b
}

// wrapper is the balancer; inSelector: the client's selector already has
// b.order as its strategy, so a call without a key needs no option.
func (b balance) wrapper(inSelector bool) client.Wrapper {
	var orderOnly []client.CallOption
	if !inSelector {
		// Built once: the option is the same for every call.
		orderOnly = []client.CallOption{client.WithSelectOption(selector.WithStrategy(b.order))}
	}
	return func(next client.Client) client.Client {
		return balancer{Client: next, orderOnly: orderOnly, byKey: b.byKey}
	}
}

var strategies = map[string]bool{"roundrobin": true, "random": true, "hash": true}

type balancer struct {
	client.Client
	// orderOnly is the instance order's option, alone: a call without
	// options of its own passes it as it is. nil: the selector orders.
	orderOnly []client.CallOption
	// byKey, if set, is the order of a call with a hash key.
	byKey func(key string) client.CallOption
}

func (b balancer) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	order := b.orderOnly
	if b.byKey != nil { // only then: reading the metadata copies it
		if key, ok := hashKey(ctx); ok {
			order = []client.CallOption{b.byKey(key)}
		}
	}
	if len(opts) > 0 {
		order = append(opts, order...)
	}
	err := b.Client.Call(ctx, req, rsp, order...)
	if noInstance(err) {
		return noInstanceError(req.Service())
	}
	return err
}

// noInstanceError is the error of a call that found no instance. Apart
// from Call so that its arguments' room is not in Call's frame, which
// stays on the stack below the call in flight.
func noInstanceError(service string) error {
	return merrors.New(clientID, fmt.Sprintf("service %s: no instance available", service), 503)
}

// roundRobin keeps one position per service, and the instances of each
// service sorted by id (the registry's order can change between lookups;
// ids don't), sorted again only when the selector's list changes.
type roundRobin struct {
	services sync.Map // service name -> *rrService
	outliers *Outliers
}

type rrService struct {
	next   atomic.Uint64
	sorted atomic.Pointer[sortedNodes]
}

// sortedNodes are the nodes of one list the selector handed out, which it
// never changes (pkg/discovery.NewSelector). Holding the list keeps its
// address from being reused by another while it is compared with.
type sortedNodes struct {
	of    []*registry.Service
	nodes []*registry.Node // read-only
}

func (r *roundRobin) order(services []*registry.Service) selector.Next {
	s := r.service(services[0].Name)
	sorted := s.sorted.Load()
	if sorted == nil || !sameList(sorted.of, services) {
		nodes := flatten(services)
		slices.SortFunc(nodes, func(a, b *registry.Node) int { return cmp.Compare(a.Id, b.Id) })
		sorted = &sortedNodes{of: services, nodes: nodes}
		s.sorted.Store(sorted)
	}
	nodes := sorted.nodes
	start := 0
	if len(nodes) > 1 {
		start = int((s.next.Add(1) - 1) % uint64(len(nodes)))
	}
	if r.outliers.any() {
		// Rotated into a copy of its own: start goes first.
		rotated := make([]*registry.Node, 0, len(nodes))
		rotated = append(append(rotated, nodes[start:]...), nodes[:start]...)
		return walk(r.outliers.last(rotated), 0)
	}
	return walk(nodes, start)
}

// service is the state of service, created on its first call.
func (r *roundRobin) service(name string) *rrService {
	if s, ok := r.services.Load(name); ok {
		return s.(*rrService)
	}
	s, _ := r.services.LoadOrStore(name, new(rrService))
	return s.(*rrService)
}

// sameList reports whether a and b are the same slice.
func sameList(a, b []*registry.Service) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func randomOrder(services []*registry.Service, outliers *Outliers) selector.Next {
	nodes := flatten(services)
	rand.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
	return walk(outliers.last(nodes), 0)
}

// walk visits nodes in order from start, each once before any twice.
func walk(nodes []*registry.Node, start int) selector.Next {
	var i atomic.Uint64
	return func() (*registry.Node, error) {
		if len(nodes) == 0 {
			return nil, selector.ErrNoneAvailable
		}
		return nodes[(uint64(start)+i.Add(1)-1)%uint64(len(nodes))], nil
	}
}

// flatten copies the nodes of every version of a service, so that sorting
// or shuffling leaves the selector's cache alone.
func flatten(services []*registry.Service) []*registry.Node {
	n := 0
	for _, s := range services {
		n += len(s.Nodes)
	}
	nodes := make([]*registry.Node, 0, n)
	for _, s := range services {
		nodes = append(nodes, s.Nodes...)
	}
	return nodes
}

// noInstance recognises the selector's "not found" and "none available",
// which go-micro's client reports as a 500 with the selector error in the
// text.
func noInstance(err error) bool {
	e, ok := Error(err)
	if !ok || e.Id != clientID || e.Code != 500 {
		return false
	}
	return strings.HasSuffix(e.Detail, selector.ErrNotFound.Error()) ||
		strings.HasSuffix(e.Detail, selector.ErrNoneAvailable.Error())
}
