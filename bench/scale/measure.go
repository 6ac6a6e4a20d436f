package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/pkg/discovery"
)

// As the services run (README: Registration): TTL 10 s, refreshed every 5 s.
const (
	registerTTL      = 10 * time.Second
	registerInterval = 5 * time.Second
	lookupTimeout    = time.Second // pkg/service's bound on a lookup
	// A change not delivered to a watcher by then counts as missed.
	changeDeadline = 15 * time.Second
)

// result is one registry at one size.
type result struct {
	registry, version          string
	members                    int // processes: 1, or a cluster's
	instances, services, watch int

	uncached, cached []time.Duration
	lookupErrors     int             // from the registry: failed, or short of an instance
	cachedErrors     int             // from the cache: failed
	stale            int64           // answered from the last list after the lookup timeout
	added, removed   []time.Duration // per change: until the last watcher had it
	addedEach        []time.Duration // per change and watcher
	missed           int             // (change, watcher) pairs never delivered
	restEvents       int64           // watch results delivered at rest, when nothing changed

	// The registry's CPU time and the wall time of each phase.
	steadyCPU, steady     time.Duration // at rest
	registerCPU           time.Duration // registering every instance
	lookupCPU, lookupWall time.Duration // lookups from the registry
	churnCPU, churnWall   time.Duration // joins and leaves
}

// Registry CPU per operation, less what it spends at rest meanwhile.
func (r result) perRegistration() time.Duration { return r.registerCPU / time.Duration(r.instances) }
func (r result) perLookup() time.Duration {
	return r.net(r.lookupCPU, r.lookupWall) / time.Duration(max(len(r.uncached), 1))
}
func (r result) perChange() time.Duration {
	return r.net(r.churnCPU, r.churnWall) / time.Duration(max(len(r.added)+len(r.removed), 1))
}

func (r result) net(cpu, wall time.Duration) time.Duration {
	if r.steady > 0 {
		cpu -= time.Duration(float64(r.steadyCPU) * wall.Seconds() / r.steady.Seconds())
	}
	return max(cpu, 0)
}

func (r result) line() string {
	return fmt.Sprintf("  lookup from registry p50 %s p99 %s, from cache p50 %s p99 %s; watch delay join p50 %s p99 %s, leave p50 %s; missed %d; CPU at rest %.1f %% of a core",
		fmtDur(pct(r.uncached, 50)), fmtDur(pct(r.uncached, 99)), fmtDur(pct(r.cached, 50)), fmtDur(pct(r.cached, 99)),
		fmtDur(pct(r.added, 50)), fmtDur(pct(r.added, 99)), fmtDur(pct(r.removed, 50)), r.missed, share(r.steadyCPU, r.steady))
}

// instance is one registered instance and the registry client it
// registers with, as a service process has.
type instance struct {
	reg registry.Registry
	svc *registry.Service
}

func (i instance) register(healthPort int) error {
	return i.reg.Register(i.svc, registry.RegisterTTL(registerTTL), discovery.HTTPCheck(healthPort))
}

// measure starts the registry, registers n instances, starts the callers
// and measures each phase, then stops everything it started.
func measure(ctx context.Context, c config, dir, name string, cluster bool, n int) (res result, err error) {
	res = result{registry: name, instances: n, services: min(c.services, n), watch: c.watchers}
	start := startRegistry
	if cluster {
		start = func(dir, name, bin string, _ int) (*server, error) { return startCluster(dir, name, bin) }
	}
	srv, err := start(dir, name, c.bin, c.consulConns)
	if err != nil {
		return res, err
	}
	defer srv.stop()
	res.version, res.members = srv.version, len(srv.pids)
	cpu := registryCPU(srv.pids)
	cfg := discovery.Config{Name: name, Addresses: srv.addrs, Timeout: 5 * time.Second}

	// GET /health for every instance: what Consul's HTTP check asks.
	health, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("serving")) }), ReadHeaderTimeout: time.Second}
	go func() { _ = hs.Serve(health) }()
	defer hs.Close()
	healthPort := health.Addr().(*net.TCPAddr).Port

	newInstance := func(service, id string, port int) (instance, error) {
		reg, err := discovery.New(cfg)
		if err != nil {
			return instance{}, err
		}
		return instance{reg: reg, svc: &registry.Service{Name: service, Version: "latest", Nodes: []*registry.Node{{
			Id: id, Address: "127.0.0.1:" + strconv.Itoa(port), Metadata: map[string]string{"metrics_address": "127.0.0.1:1"},
		}}}}, nil
	}
	services := make([]string, res.services)
	for i := range services {
		services[i] = "svc-" + strconv.Itoa(i)
	}

	// Phase 1: register every instance, one after another.
	before := cpu()
	var fleet []instance
	for i := range n {
		s := services[i%len(services)]
		in, err := newInstance(s, s+"-"+strconv.Itoa(i), 20000+i)
		if err != nil {
			return res, err
		}
		if err := in.register(healthPort); err != nil {
			return res, fmt.Errorf("register %s: %w", in.svc.Nodes[0].Id, err)
		}
		fleet = append(fleet, in)
	}
	res.registerCPU = cpu() - before
	defer func() {
		for _, in := range fleet {
			_ = in.reg.Deregister(in.svc)
		}
	}()

	// Every instance refreshes its registration each interval, from a
	// random start, as the services' servers do.
	refreshCtx, stopRefresh := context.WithCancel(ctx)
	var refreshing sync.WaitGroup
	defer func() { stopRefresh(); refreshing.Wait() }()
	for _, in := range fleet {
		refreshing.Go(func() {
			t := time.NewTimer(rand.N(registerInterval))
			defer t.Stop()
			for {
				select {
				case <-refreshCtx.Done():
					return
				case <-t.C:
					_ = in.register(healthPort) // a failure shows as a missing instance below
					t.Reset(registerInterval)
				}
			}
		})
	}

	// The callers: each its own registry client, the lookups bounded and
	// stale on error, and go-micro's cache over them (pkg/service,
	// pkg/wrappers), its watches tapped to time what they deliver.
	rec := newRecorder(c.watchers)
	var stale atomic.Int64
	type caller struct {
		reg registry.Registry
		sel selector.Selector
	}
	callers := make([]caller, c.watchers)
	for w := range callers {
		callerCfg := cfg
		callerCfg.Addresses = srv.callerAddrs(w)
		base, err := discovery.New(callerCfg)
		if err != nil {
			return res, err
		}
		lookups := discovery.StaleOnError(&tapped{Registry: base, rec: rec, watcher: w}, lookupTimeout, registerTTL, func(string, ...any) { stale.Add(1) })
		callers[w] = caller{reg: lookups, sel: selector.NewSelector(selector.Registry(lookups))}
		defer callers[w].sel.Close()
	}
	// Wait until every caller's cache lists every instance: its watches
	// then run (the cache starts one per service at its first lookup).
	want := map[string]int{}
	for _, in := range fleet {
		want[in.svc.Name]++
	}
	for w, cl := range callers {
		for _, s := range services {
			if err := untilNodes(cl.sel, s, want[s]); err != nil {
				return res, fmt.Errorf("caller %d: %w", w, err)
			}
		}
	}

	// A watch's first result (Consul's plugin sends the list it starts
	// with) is no change: let them all arrive first, until the watches
	// have been quiet for a second.
	last, quietSince := rec.delivered.Load(), time.Now()
	err = poll.Until(20*time.Second, 50*time.Millisecond, func() error {
		if n := rec.delivered.Load(); n != last {
			last, quietSince = n, time.Now()
		}
		if time.Since(quietSince) < time.Second {
			return errors.New("watches still delivering their first results")
		}
		return nil
	})
	if err != nil {
		return res, err
	}

	// Phase 2: at rest. Instances refresh, Consul checks, callers watch.
	before, events := cpu(), rec.delivered.Load()
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(c.steady):
	}
	res.steady, res.steadyCPU = time.Since(t0), cpu()-before
	// Nothing was registered or removed: any result is a check that
	// flapped (or a watch that restarted), told to every watcher.
	res.restEvents = rec.delivered.Load() - events

	// Phase 3: lookups, every caller at once, from the registry (a cache
	// miss) and then from the cache.
	var mu sync.Mutex
	lookups := func(n int, lookup func(cl caller, s string) error, into *[]time.Duration, failed *int) {
		var wg sync.WaitGroup
		for w, cl := range callers {
			wg.Go(func() {
				var ds []time.Duration
				errs := 0
				for i := range n {
					s := services[(w+i)%len(services)]
					t := time.Now()
					err := lookup(cl, s)
					ds = append(ds, time.Since(t))
					if err != nil {
						errs++
					}
				}
				mu.Lock()
				*into = append(*into, ds...)
				*failed += errs
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	before, t0 = cpu(), time.Now()
	stale.Store(0)
	lookups(c.lookups, func(cl caller, s string) error {
		got, err := cl.reg.GetService(s)
		if err == nil && countNodes(got) != want[s] {
			err = fmt.Errorf("%d instances of %s, want %d", countNodes(got), s, want[s])
		}
		return err
	}, &res.uncached, &res.lookupErrors)
	res.lookupCPU, res.lookupWall = cpu()-before, time.Since(t0)
	res.stale = stale.Load()
	lookups(c.cached, func(cl caller, s string) error {
		next, err := cl.sel.Select(s)
		if err == nil {
			_, err = next()
		}
		return err
	}, &res.cached, &res.cachedErrors)

	// Phase 4: churn. One instance at a time joins, then leaves; each
	// change is timed until every caller's watch has delivered it.
	before, t0 = cpu(), time.Now()
	for k := range c.changes {
		s := services[k%len(services)]
		in, err := newInstance(s, s+"-new-"+strconv.Itoa(k), 30000+k)
		if err != nil {
			return res, err
		}
		id := in.svc.Nodes[0].Id
		rec.expect(true, id)
		if err := in.register(healthPort); err != nil {
			return res, fmt.Errorf("register %s: %w", id, err)
		}
		all, each, missed := rec.wait(ctx, changeDeadline)
		res.addedEach = append(res.addedEach, each...)
		res.missed += missed
		if missed == 0 {
			res.added = append(res.added, all)
		}
		rec.expect(false, id)
		if err := in.reg.Deregister(in.svc); err != nil {
			return res, fmt.Errorf("deregister %s: %w", id, err)
		}
		all, _, missed = rec.wait(ctx, changeDeadline)
		res.missed += missed
		if missed == 0 {
			res.removed = append(res.removed, all)
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
	}
	res.churnCPU, res.churnWall = cpu()-before, time.Since(t0)
	return res, nil
}

// untilNodes polls the caller's cache until it lists n instances of s.
func untilNodes(sel selector.Selector, s string, n int) error {
	return poll.Until(30*time.Second, 20*time.Millisecond, func() error {
		next, err := sel.Select(s)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for range 4 * n { // round robin: every instance within n picks
			node, err := next()
			if err != nil {
				return err
			}
			seen[node.Id] = true
		}
		if len(seen) != n {
			return fmt.Errorf("the cache lists %d instances of %s, want %d", len(seen), s, n)
		}
		return nil
	})
}

func countNodes(ss []*registry.Service) int {
	n := 0
	for _, s := range ss {
		n += len(s.Nodes)
	}
	return n
}

// tapped passes every result a watch delivers to the recorder, as the
// cache receives it.
type tapped struct {
	registry.Registry
	rec     *recorder
	watcher int
}

func (t *tapped) Watch(opts ...registry.WatchOption) (registry.Watcher, error) {
	w, err := t.Registry.Watch(opts...)
	if err != nil {
		return nil, err
	}
	return &tappedWatcher{Watcher: w, t: t}, nil
}

type tappedWatcher struct {
	registry.Watcher
	t *tapped
}

func (w *tappedWatcher) Next() (*registry.Result, error) {
	r, err := w.Watcher.Next()
	if err == nil && r != nil && r.Service != nil {
		w.t.rec.saw(w.t.watcher, r, time.Now())
	}
	return r, err
}

// recorder times one change at a time: the first delivery of it to each
// watcher.
type recorder struct {
	watchers  int
	delivered atomic.Int64 // every result, whatever it is
	mu        sync.Mutex
	added     bool   // the change is a registration (else a deregistration)
	id        string // of the instance
	start     time.Time
	seen      map[int]time.Duration
	done      chan struct{}
}

func newRecorder(watchers int) *recorder { return &recorder{watchers: watchers} }

// expect starts timing a change, now.
func (r *recorder) expect(added bool, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.added, r.id, r.start = added, id, time.Now()
	r.seen, r.done = map[int]time.Duration{}, make(chan struct{})
}

// saw records a result delivered to a watcher: a registration is seen in
// any result listing the instance but a deletion, a deregistration in a
// deletion listing it (both plugins send the nodes removed).
func (r *recorder) saw(watcher int, res *registry.Result, at time.Time) {
	r.delivered.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil || (res.Action == "delete") == r.added {
		return
	}
	if _, ok := r.seen[watcher]; ok {
		return
	}
	for _, n := range res.Service.Nodes {
		if n.Id == r.id {
			r.seen[watcher] = at.Sub(r.start)
			if len(r.seen) == r.watchers {
				close(r.done)
			}
			return
		}
	}
}

// wait returns when every watcher has seen the change or within has
// passed: the delay until the last watcher had it, each watcher's delay,
// and how many never had it.
func (r *recorder) wait(ctx context.Context, within time.Duration) (all time.Duration, each []time.Duration, missed int) {
	r.mu.Lock()
	done := r.done
	r.mu.Unlock()
	select {
	case <-done:
	case <-time.After(within):
	case <-ctx.Done():
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.seen {
		each = append(each, d)
		all = max(all, d)
	}
	missed = r.watchers - len(r.seen)
	r.seen = nil // later deliveries of this change are not counted
	return all, each, missed
}
