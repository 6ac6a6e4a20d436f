package discovery

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"go-micro.dev/v4/logger"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"
	util "go-micro.dev/v4/util/registry"
)

// NewSelector is go-micro's default selector (selector.NewSelector: a
// registry cache with a TTL, kept fresh by one watch per service looked
// up, serving its last list while the registry fails) whose cache hands out
// the list it holds instead of a copy of it: go-micro's copies every
// service and node at every Select, 6 allocations a call for two instances
// (TestSelectAllocatesNothing), 8 with their metadata (BenchmarkLayers).
// The lists are read-only for everyone: a watch event
// or a lookup replaces a list, never changes one, so a strategy or a
// filter may keep what it is given but must not modify it.
//
// The TTL is read as go-micro's selector reads it, from the value
// "selector_ttl" of the options' context (default one minute). Init
// starts a new cache, as go-micro's does.
func NewSelector(opts ...selector.Option) selector.Selector {
	o := selector.Options{Strategy: selector.Random}
	for _, opt := range opts {
		opt(&o)
	}
	if o.Registry == nil {
		o.Registry = registry.DefaultRegistry
	}
	return &cachedSelector{opts: o, cache: newCache(o.Registry, ttlOf(o))}
}

type cachedSelector struct {
	mu    sync.RWMutex
	opts  selector.Options
	cache *snapshotCache
}

func ttlOf(o selector.Options) time.Duration {
	if o.Context != nil {
		if d, ok := o.Context.Value("selector_ttl").(time.Duration); ok {
			return d
		}
	}
	return time.Minute // go-micro's cache.DefaultTTL
}

func (s *cachedSelector) Init(opts ...selector.Option) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range opts {
		o(&s.opts)
	}
	s.cache.stop()
	s.cache = newCache(s.opts.Registry, ttlOf(s.opts))
	return nil
}

func (s *cachedSelector) Options() selector.Options {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.opts
}

// Select is go-micro's: the cached services, filtered, in the order of the
// strategy. A call without options allocates nothing here.
func (s *cachedSelector) Select(service string, opts ...selector.SelectOption) (selector.Next, error) {
	s.mu.RLock()
	c, strategy := s.cache, s.opts.Strategy
	s.mu.RUnlock()
	var filters []selector.Filter
	if len(opts) > 0 {
		so := selectOptions(strategy, opts)
		strategy, filters = so.Strategy, so.Filters
	}
	services, err := c.get(service)
	if err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			return nil, selector.ErrNotFound
		}
		return nil, err
	}
	for _, filter := range filters {
		services = filter(services)
	}
	if len(services) == 0 {
		return nil, selector.ErrNoneAvailable
	}
	return strategy(services), nil
}

// selectOptions applies opts (apart from Select, so that a call without
// options does not make them escape).
func selectOptions(strategy selector.Strategy, opts []selector.SelectOption) *selector.SelectOptions {
	so := &selector.SelectOptions{Strategy: strategy}
	for _, o := range opts {
		o(so)
	}
	return so
}

// Mark and Reset do nothing, as in go-micro's selector: the client's
// outlier record (pkg/wrappers) keeps failing instances last.
func (s *cachedSelector) Mark(string, *registry.Node, error) {}
func (s *cachedSelector) Reset(string)                       {}

// Close stops the watches.
func (s *cachedSelector) Close() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.cache.stop()
	return nil
}

func (s *cachedSelector) String() string { return "registry" }

// snapshotCache is go-micro's registry cache (registry/cache v4.11.0), copy on
// write: get returns the list it holds, and every change stores a new one.
type snapshotCache struct {
	reg registry.Registry
	ttl time.Duration

	mu      sync.RWMutex
	status  error // the last error of the registry, until it answers again
	entries map[string]entry
	watched map[string]bool
	running map[string]bool
	lookups map[string]*lookup // in flight, one per service

	exit     chan struct{}
	stopOnce sync.Once
}

type entry struct {
	services []*registry.Service // read-only
	expires  time.Time
}

// lookup is a registry lookup other callers of get wait for (go-micro's
// singleflight).
type lookup struct {
	done     chan struct{}
	services []*registry.Service
	err      error
}

func newCache(reg registry.Registry, ttl time.Duration) *snapshotCache {
	return &snapshotCache{
		reg: reg, ttl: ttl,
		entries: map[string]entry{}, watched: map[string]bool{}, running: map[string]bool{}, lookups: map[string]*lookup{},
		exit: make(chan struct{}),
	}
}

func (c *snapshotCache) stop() { c.stopOnce.Do(func() { close(c.exit) }) }

func (c *snapshotCache) quit() bool {
	select {
	case <-c.exit:
		return true
	default:
		return false
	}
}

// get is the cached list of service while it has instances and its TTL
// runs; else the registry's answer, or the stale list if the registry
// fails.
func (c *snapshotCache) get(service string) ([]*registry.Service, error) {
	c.mu.RLock()
	e, cached := c.entries[service]
	watched := c.watched[service]
	c.mu.RUnlock()
	if cached && len(e.services) > 0 && time.Now().Before(e.expires) {
		return e.services, nil
	}
	if c.ttl > 0 && !watched {
		c.mu.Lock()
		c.watched[service] = true
		if !c.running[service] {
			c.running[service] = true
			go c.run(service)
		}
		c.mu.Unlock()
	}
	services, err := c.lookup(service)
	if err != nil {
		if len(e.services) > 0 {
			c.setStatus(err)
			return e.services, nil
		}
		return nil, err
	}
	if len(services) == 0 {
		return nil, registry.ErrNotFound
	}
	return services, nil
}

// lookup asks the registry, once for all callers at a time, and caches a
// copy of the answer.
func (c *snapshotCache) lookup(service string) ([]*registry.Service, error) {
	c.mu.Lock()
	if l, ok := c.lookups[service]; ok {
		c.mu.Unlock()
		<-l.done
		return l.services, l.err
	}
	l := &lookup{done: make(chan struct{})}
	c.lookups[service] = l
	c.mu.Unlock()

	services, err := c.reg.GetService(service)
	c.mu.Lock()
	delete(c.lookups, service)
	if err == nil {
		c.status = nil
		services = util.Copy(services) // the registry's own may change
		c.setLocked(service, services)
	}
	c.mu.Unlock()
	l.services, l.err = services, err
	close(l.done)
	return services, err
}

func (c *snapshotCache) setStatus(err error) {
	c.mu.Lock()
	c.status = err
	c.mu.Unlock()
}

func (c *snapshotCache) setLocked(service string, services []*registry.Service) {
	c.entries[service] = entry{services: services, expires: time.Now().Add(c.ttl)}
}

// delLocked forgets service, unless the registry is failing.
func (c *snapshotCache) delLocked(service string) {
	if c.status != nil {
		return
	}
	delete(c.entries, service)
}

// update applies a watch event as go-micro's cache does, to a new list.
func (c *snapshotCache) update(res *registry.Result) {
	if res == nil || res.Service == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	name := res.Service.Name
	if !c.watched[name] {
		return
	}
	e, ok := c.entries[name]
	if !ok {
		return // nothing cached until a lookup
	}
	services := e.services
	if len(res.Service.Nodes) == 0 {
		if res.Action == "delete" {
			c.delLocked(name)
		}
		return
	}
	index := -1
	for i, s := range services {
		if s.Version == res.Service.Version {
			index = i
		}
	}
	switch res.Action {
	case "create", "update":
		// The event's service, with the nodes it does not name kept.
		svc := *res.Service
		svc.Nodes = slices.Clone(res.Service.Nodes)
		if index < 0 {
			c.setLocked(name, append(slices.Clip(services), &svc))
			return
		}
		for _, cur := range services[index].Nodes {
			if !hasNode(res.Service.Nodes, cur.Id) {
				svc.Nodes = append(svc.Nodes, cur)
			}
		}
		c.setLocked(name, replaced(services, index, &svc))
	case "delete":
		if index < 0 {
			return
		}
		old := services[index]
		var nodes []*registry.Node
		for _, cur := range old.Nodes {
			if !hasNode(res.Service.Nodes, cur.Id) {
				nodes = append(nodes, cur)
			}
		}
		if len(nodes) > 0 {
			svc := *old
			svc.Nodes = nodes
			c.setLocked(name, replaced(services, index, &svc))
			return
		}
		if len(services) == 1 {
			c.delLocked(name)
			return
		}
		var rest []*registry.Service
		for _, s := range services {
			if s.Version != old.Version {
				rest = append(rest, s)
			}
		}
		c.setLocked(name, rest)
	case "override":
		if index >= 0 {
			c.delLocked(name)
		}
	}
}

func hasNode(nodes []*registry.Node, id string) bool {
	for _, n := range nodes {
		if n.Id == id {
			return true
		}
	}
	return false
}

// replaced is a copy of services with services[i] replaced by s.
func replaced(services []*registry.Service, i int, s *registry.Service) []*registry.Service {
	out := slices.Clone(services)
	out[i] = s
	return out
}

// watchBackoff is go-micro's: 0, 10 ms, 100 ms, 1 s, 10 s.
func watchBackoff(attempts int) time.Duration {
	if attempts == 0 {
		return 0
	}
	return time.Duration(math.Pow(10, float64(attempts))) * time.Millisecond
}

// sleep waits d, or less if the cache stops; false if it stopped.
func (c *snapshotCache) sleep(d time.Duration) bool {
	if d <= 0 {
		return !c.quit()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.exit:
		return false
	case <-t.C:
		return true
	}
}

// run watches service until the cache stops, with a new watch after each
// failure, backing off as go-micro's cache does.
func (c *snapshotCache) run(service string) {
	defer func() {
		c.mu.Lock()
		c.watched = map[string]bool{}
		c.running[service] = false
		c.mu.Unlock()
	}()
	var a, b int // failures in a row: to start a watch, of a watch
	for {
		if !c.sleep(time.Duration(rand.Int64N(100)) * time.Millisecond) { // jitter
			return
		}
		w, err := c.reg.Watch(registry.WatchService(service))
		if err != nil {
			if !c.backOff(&a, "watching "+service, err) {
				return
			}
			continue
		}
		a = 0
		if err := c.watch(w); err != nil {
			if !c.backOff(&b, "watch of "+service, err) {
				return
			}
			continue
		}
		b = 0
	}
}

// backOff records a failed watch (the *failures-th in a row) and waits as
// go-micro's cache does before the next; false if the cache stopped.
func (c *snapshotCache) backOff(failures *int, what string, err error) bool {
	if c.quit() {
		return false
	}
	d := watchBackoff(*failures)
	c.setStatus(err)
	if *failures > 3 {
		logger.Logf(logger.DebugLevel, "discovery cache: %s: %v, backing off %v", what, err, d)
		*failures = 0
	}
	if !c.sleep(d) {
		return false
	}
	*failures++
	return true
}

// watch applies the events of w until it fails or the cache stops.
func (c *snapshotCache) watch(w registry.Watcher) error {
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer w.Stop()
		select {
		case <-c.exit:
		case <-stop:
		}
	}()
	for {
		res, err := w.Next()
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.status = nil
		c.mu.Unlock()
		c.update(res)
	}
}
