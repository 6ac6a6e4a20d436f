package discovery

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"go-micro.dev/v4/registry"
	util "go-micro.dev/v4/util/registry"
)

// StaleOnError wraps the registry a client looks services up in. Each
// GetService is bounded by timeout, and when the registry fails or does not
// answer in time, the last good answer for that service is returned instead
// of the error, however old: the selector's cache then keeps using it for
// another cache TTL.
//
// go-micro's cache (go-micro.dev/v4/registry/cache) already serves a stale
// list when a refresh fails, but never extends it, so once the cache TTL has
// run out every call waits on the registry again: forever with a stopped
// (SIGSTOP) Consul, whose HTTP client has no timeout, about 5 s with etcd.
// Calls between healthy services must not depend on the registry answering.
//
// An answer with no instance from a registry that does answer is also
// replaced by the last good one while that is younger than holdEmpty: a
// Consul agent restarted in dev mode has forgotten every instance until each
// re-registers, within one register interval. After holdEmpty the empty
// answer stands, so a service that really went away is reported as such.
// The hold counts from the first empty answer, not from the last good one:
// after a long outage the last good answer is old, and the registry comes
// back with the leases of every instance expired until each re-registers.
//
// Its Watch of one service also looks the service up every resyncEvery and
// passes what the registry lists on as an update (see resyncWatcher).
func StaleOnError(r registry.Registry, timeout, holdEmpty time.Duration, logf func(format string, args ...any)) registry.Registry {
	return &staleRegistry{Registry: r, timeout: timeout, holdEmpty: holdEmpty, logf: logf, last: map[string]*lastAnswer{}, now: time.Now,
		resync: resyncEvery}
}

// resyncEvery is how often a watch of one service is checked against a
// lookup: about the register interval, so the registry gets about as many
// lookups per caller as it gets renewals per instance.
const resyncEvery = 5 * time.Second

type staleRegistry struct {
	registry.Registry
	timeout   time.Duration
	holdEmpty time.Duration
	logf      func(format string, args ...any)
	resync    time.Duration

	now func() time.Time

	mu   sync.Mutex
	last map[string]*lastAnswer
}

type lastAnswer struct {
	services   []*registry.Service
	at         time.Time
	emptySince time.Time // the first of the empty answers since, if any
	// failedAt is when a lookup of the service last got no answer (or an
	// error), the watch's resync included; zero once one is answered.
	failedAt time.Time
}

// failingBound is how long a lookup waits for the registry while the last
// lookup of the service failed, instead of the whole timeout: every call
// behind the cache's lookup waits with it. Measured with bench/chaos T9
// (one etcd paused 60 s): the callers' cache TTL (1 min) ran out during the
// pause, the gateway's lookup of hello and then hello's of user each held
// their calls for the 1 s timeout, and the gateway's breaker rejected 33
// calls ("too many calls in flight").
const failingBound = 50 * time.Millisecond

func (s *staleRegistry) GetService(name string, opts ...registry.GetOption) ([]*registry.Service, error) {
	bound := s.timeout
	s.mu.Lock()
	if last, ok := s.last[name]; ok && !last.failedAt.IsZero() {
		bound = min(bound, failingBound)
	}
	s.mu.Unlock()
	return s.lookup(name, bound, opts...)
}

// answered records whether the registry answered a lookup of name.
func (s *staleRegistry) answered(name string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if last, known := s.last[name]; known {
		switch {
		case ok:
			last.failedAt = time.Time{}
		case last.failedAt.IsZero():
			last.failedAt = s.now()
		}
	}
}

func (s *staleRegistry) lookup(name string, bound time.Duration, opts ...registry.GetOption) ([]*registry.Service, error) {
	type result struct {
		services []*registry.Service
		err      error
	}
	lookup := func() (res result) {
		done := make(chan result, 1)
		go func() {
			svcs, err := s.Registry.GetService(name, opts...)
			s.answered(name, err == nil || errors.Is(err, registry.ErrNotFound)) // also after the bound
			done <- result{svcs, err}
		}()
		select {
		case res = <-done:
		case <-time.After(bound):
			res.err = fmt.Errorf("no answer within %v", bound)
		}
		return res
	}
	res := lookup()
	s.mu.Lock()
	_, known := s.last[name]
	s.mu.Unlock()
	if !known && (res.err == nil || errors.Is(res.err, registry.ErrNotFound)) && countNodes(res.services) == 0 {
		// Nothing to fall back on, and a registry that lists none: ask
		// again. The etcd plugin reads from any member (serializable), and
		// a member a moment behind does not list an instance registered
		// just before; its client sends the next read to the next member.
		// Seen in bench/chaos T9 (etcd cluster, load average 23): a
		// gateway's first 12 calls failed ("no instance available") 130 ms
		// after hello registered, once its readiness check had listed hello.
		res = lookup()
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	last, ok := s.last[name]
	switch {
	case res.err == nil && countNodes(res.services) > 0:
		s.last[name] = &lastAnswer{services: util.Copy(res.services), at: s.now()}
		return res.services, nil
	case !ok:
		return res.services, res.err
	case res.err == nil || errors.Is(res.err, registry.ErrNotFound):
		last.failedAt = time.Time{}
		if last.emptySince.IsZero() {
			last.emptySince = s.now()
		}
		if s.now().Sub(last.emptySince) > s.holdEmpty {
			delete(s.last, name)
			return res.services, res.err
		}
		s.logf("registry lists no instance of %s: using the %d it listed %v ago", name, countNodes(last.services), s.now().Sub(last.at).Round(time.Millisecond))
	default:
		if last.failedAt.IsZero() {
			last.failedAt = s.now()
		}
		s.logf("registry lookup of %s failed (%v): using the last answer, %d instances, from %v ago", name, res.err, countNodes(last.services), s.now().Sub(last.at).Round(time.Millisecond))
	}
	return util.Copy(last.services), nil
}

// Watch is the registry's watch; one of a single service (the selector's
// cache watches each service it looks up) is a resyncWatcher.
func (s *staleRegistry) Watch(opts ...registry.WatchOption) (registry.Watcher, error) {
	w, err := s.Registry.Watch(opts...)
	if err != nil {
		return nil, err
	}
	var o registry.WatchOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.Service == "" {
		return w, nil
	}
	r := &resyncWatcher{inner: w, events: make(chan watchEvent), quit: make(chan struct{}), every: s.resync, gone: map[string]bool{},
		hold: s.holdEmpty, nodes: map[string]string{}, name: o.Service,
		// The caller's cache looks a service up before it watches it.
		reconcile: 2, // once at the start and once after the first event
		known: func() map[string]string {
			s.mu.Lock()
			defer s.mu.Unlock()
			ids := map[string]string{}
			if last, ok := s.last[o.Service]; ok {
				for _, svc := range last.services {
					for _, n := range svc.Nodes {
						ids[n.Id] = svc.Version
					}
				}
			}
			return ids
		},
		lookup: func() ([]*registry.Service, error) {
			// The answer comes through a channel: a lookup that outlasts
			// the timeout still answers after Call has returned.
			answer := make(chan []*registry.Service, 1)
			err := Call(context.Background(), s.timeout, func() error {
				svcs, err := s.Registry.GetService(o.Service)
				answer <- svcs
				return err
			})
			s.answered(o.Service, err == nil || errors.Is(err, registry.ErrNotFound))
			var svcs []*registry.Service
			select {
			case svcs = <-answer:
			default: // no answer in time
			}
			return svcs, err
		}}
	go r.pump()
	return r, nil
}

// resyncWatcher passes on the events of a watch of one service and, every
// interval, an "update" with the instances a lookup lists (when the lookup
// succeeds and lists any). The selector's cache adds the instances of an
// update it does not have and drops none.
//
// So each lookup also deletes the instances the cache holds that the
// registry no longer lists: the cache's first lookup is made before its
// watch starts (up to 100 ms later, by the cache's jitter), and an instance
// that leaves in between is never deleted by the watch: etcd's starts after
// the delete, and the Consul plugin's first answer lists the instances as
// they are then, which the cache adds to what it holds. Unless deleted, such
// an instance stays in the cache for as long as other events keep it fresh.
// A lookup is made as the watch starts, again after its first event (the
// Consul plugin's first answer: its view from then on), and every
// interval. An instance deleted this way is not barred from coming back
// (gone): a lookup answered by a server a moment behind may miss one just
// registered, and the next lookup adds it again.
//
// A watch can go quiet while the registry changes: a Consul agent's view is
// fed by one server, and after that server is partitioned the agent finds
// out only by gRPC keepalive (30 s + 10 s in Consul 1.13); an etcd watch
// stream on a paused member waits with it. Measured with bench/chaos T9
// (Consul leader paused 60 s): an instance that registered 0.3 s after the
// new leader got its first call 37.5 s later, when the caller's watch came
// back. A lookup is a plain read that any server answers.
//
// A delete that would leave the caller's cache with no instance of the
// service is held for hold, as StaleOnError holds an empty answer: the
// cache would drop the service and every call would wait on a lookup. An
// etcd paused for longer than the TTL (one server, or a VM frozen) expires
// every lease by its own clock as it resumes, and deletes every instance at
// once a moment before their renewals reach it: measured with bench/chaos
// T9 (one etcd paused 60 s), calls through the gateway waited on lookups
// until its breaker rejected 5-20 of them ("too many calls in flight"). The
// held deletes are dropped for the instances listed again within hold and
// passed on for the others, once any instance is listed or hold is over.
type resyncWatcher struct {
	inner  registry.Watcher
	events chan watchEvent
	quit   chan struct{}
	once   sync.Once
	every  time.Duration
	lookup func() ([]*registry.Service, error)
	hold   time.Duration
	known  func() map[string]string // the instances of the last good lookup, by id: their version
	name   string
	// reconcile counts the lookups still to make before waiting for events.
	reconcile int
	gotEvent  bool

	queue []*registry.Result // still to pass on, first first
	// gone holds the instances the watch deleted and has not listed
	// since: a lookup answered by a server a moment behind must not bring
	// one back (the cache would keep it until its TTL).
	gone map[string]bool
	// nodes is what the caller's cache holds as far as this watch knows,
	// by id: the version. The last lookup's instances, then what events and
	// resyncs added and deletes removed; seeded at the first Next.
	nodes    map[string]string
	seeded   bool
	held     []*registry.Result // deletes that would have emptied the cache
	heldOver <-chan time.Time   // when hold is over for them; nil if none
}

type watchEvent struct {
	res *registry.Result
	err error
}

func (w *resyncWatcher) pump() {
	for {
		res, err := w.inner.Next()
		select {
		case w.events <- watchEvent{res, err}:
		case <-w.quit:
			return
		}
		if err != nil {
			return // the cache stops this watcher and starts another
		}
	}
}

// Next is called by one goroutine, the cache's.
func (w *resyncWatcher) Next() (*registry.Result, error) {
	if !w.seeded {
		maps.Copy(w.nodes, w.known())
		w.seeded = true
	}
	tick := time.NewTicker(w.every)
	defer tick.Stop()
	for {
		if len(w.queue) > 0 {
			r := w.queue[0]
			w.queue = w.queue[1:]
			return r, nil
		}
		if w.reconcile == 2 || (w.reconcile == 1 && w.gotEvent) {
			w.reconcile--
			w.resync(false)
			continue
		}
		select {
		case e := <-w.events:
			if e.res == nil || e.res.Service == nil {
				return e.res, e.err
			}
			w.gotEvent = true
			if e.res.Action == "delete" {
				had := len(w.nodes) > 0
				for _, n := range e.res.Service.Nodes {
					w.gone[n.Id] = true
					delete(w.nodes, n.Id)
				}
				if had && len(w.nodes) == 0 && w.hold > 0 {
					if w.held == nil {
						w.heldOver = time.After(w.hold)
					}
					w.held = append(w.held, e.res)
					continue
				}
				return e.res, e.err
			}
			for _, n := range e.res.Service.Nodes {
				delete(w.gone, n.Id)
				w.nodes[n.Id] = e.res.Service.Version
			}
			w.release()
			return e.res, e.err
		case <-w.heldOver:
			w.queue = append(w.queue, w.held...)
			w.held, w.heldOver = nil, nil
		case <-w.quit:
			return nil, registry.ErrWatcherStopped
		case <-tick.C:
			w.resync(true)
		}
	}
}

// resync looks the service up and queues, with add, an update per version
// with the instances listed, then a delete of the instances the cache
// holds that are not listed, unless that would leave it none (StaleOnError
// and the hold deal with a registry that lists none). A failed lookup
// changes nothing.
func (w *resyncWatcher) resync(add bool) {
	svcs, err := w.lookup()
	if err != nil {
		return
	}
	listed := map[string]bool{}
	for _, svc := range svcs {
		svc = util.CopyService(svc)
		svc.Nodes = slices.DeleteFunc(svc.Nodes, func(n *registry.Node) bool { return w.gone[n.Id] })
		for _, n := range svc.Nodes {
			listed[n.Id] = true
			if add {
				w.nodes[n.Id] = svc.Version
			}
		}
		if add && len(svc.Nodes) > 0 {
			w.queue = append(w.queue, &registry.Result{Action: "update", Service: svc})
		}
	}
	unlisted := map[string][]*registry.Node{} // by version
	kept := 0
	for id, version := range w.nodes {
		if listed[id] {
			kept++
		} else {
			unlisted[version] = append(unlisted[version], &registry.Node{Id: id})
		}
	}
	if kept > 0 {
		for version, nodes := range unlisted {
			for _, n := range nodes {
				delete(w.nodes, n.Id)
			}
			w.queue = append(w.queue, &registry.Result{Action: "delete", Service: &registry.Service{Name: w.name, Version: version, Nodes: nodes}})
		}
	}
	w.release()
}

// release queues the held deletes, less the instances listed again, once
// the cache holds any instance: after what is queued before them.
func (w *resyncWatcher) release() {
	if w.held == nil || len(w.nodes) == 0 {
		return
	}
	for _, r := range w.held {
		svc := util.CopyService(r.Service)
		svc.Nodes = slices.DeleteFunc(svc.Nodes, func(n *registry.Node) bool { _, ok := w.nodes[n.Id]; return ok })
		if len(svc.Nodes) > 0 {
			w.queue = append(w.queue, &registry.Result{Action: r.Action, Service: svc})
		}
	}
	w.held, w.heldOver = nil, nil
}

func (w *resyncWatcher) Stop() {
	w.once.Do(func() {
		close(w.quit)
		w.inner.Stop()
	})
}
