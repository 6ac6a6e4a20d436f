package discovery

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go-micro.dev/v4/registry"

	"github.com/example/micro-starter/internal/poll"
)

// scriptedRegistry answers GetService with whatever the test set last.
type scriptedRegistry struct {
	registry.Registry
	services []*registry.Service
	err      error
}

func (s *scriptedRegistry) GetService(string, ...registry.GetOption) ([]*registry.Service, error) {
	return s.services, s.err
}

// TestStaleAfterLongOutageThenEmpty: a registry that was away for longer
// than the hold, and comes back listing nothing (leases expired, instances
// not yet registered again), must not empty the callers' node lists at
// once. The hold counts from the first empty answer.
func TestStaleAfterLongOutageThenEmpty(t *testing.T) {
	up := []*registry.Service{{Name: "user", Nodes: []*registry.Node{{Id: "user-1"}}}}
	reg := &scriptedRegistry{services: up}
	now := time.Unix(0, 0)
	s := StaleOnError(reg, time.Second, 10*time.Second, t.Logf).(*staleRegistry)
	s.now = func() time.Time { return now }
	get := func() int {
		t.Helper()
		svcs, err := s.GetService("user")
		if err != nil && !errors.Is(err, registry.ErrNotFound) {
			t.Fatal(err)
		}
		return countNodes(svcs)
	}
	if get() != 1 {
		t.Fatal("registry up: want its one node")
	}
	reg.services, reg.err = nil, errors.New("unreachable")
	now = now.Add(time.Minute)
	if get() != 1 {
		t.Fatal("registry away: want the last good answer")
	}
	reg.err = registry.ErrNotFound // back, and empty
	now = now.Add(time.Second)
	if get() != 1 {
		t.Fatal("registry back and empty: want the last good answer during the hold")
	}
	now = now.Add(11 * time.Second)
	if get() != 0 {
		t.Fatal("still empty after the hold: want the empty answer")
	}
}

// quietRegistry's watches never deliver an event until stopped, as a
// watch on a partitioned Consul server or etcd member; its lookups answer.
type quietRegistry struct {
	scriptedRegistry
	first []*registry.Result // what its watches deliver before going quiet
}

type quietWatcher struct {
	first []*registry.Result
	stop  chan struct{}
}

func (w *quietWatcher) Next() (*registry.Result, error) {
	if len(w.first) > 0 {
		r := w.first[0]
		w.first = w.first[1:]
		return r, nil
	}
	<-w.stop
	return nil, registry.ErrWatcherStopped
}
func (w *quietWatcher) Stop() { close(w.stop) }

func (q *quietRegistry) Watch(...registry.WatchOption) (registry.Watcher, error) {
	return &quietWatcher{first: q.first, stop: make(chan struct{})}, nil
}

// TestWatchResyncsWhenQuiet: a watch of a service that has gone quiet
// still hands the caller's cache an instance the registry lists, within
// the resync interval.
func TestWatchResyncsWhenQuiet(t *testing.T) {
	joined := []*registry.Service{{Name: "user", Nodes: []*registry.Node{{Id: "user-1"}, {Id: "user-3"}}}}
	s := StaleOnError(&quietRegistry{scriptedRegistry: scriptedRegistry{services: joined}}, time.Second, 10*time.Second, t.Logf).(*staleRegistry)
	s.resync = 10 * time.Millisecond
	w, err := s.Watch(registry.WatchService("user"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	got := make(chan *registry.Result, 1)
	go func() {
		res, _ := w.Next()
		got <- res
	}()
	select {
	case res := <-got:
		if res == nil || res.Action != "update" || countNodes([]*registry.Service{res.Service}) != 2 {
			t.Fatalf("got %+v, want an update with the 2 instances listed", res)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a quiet watch passed nothing on in 5 s, the registry lists user-3")
	}
}

// TestWatchResyncAddsNothingDeleted: an instance the watch deleted is not
// brought back by a lookup that still lists it (a server a moment behind).
func TestWatchResyncAddsNothingDeleted(t *testing.T) {
	listed := []*registry.Service{{Name: "user", Nodes: []*registry.Node{{Id: "user-1"}, {Id: "user-3"}}}}
	deleted := &registry.Result{Action: "delete", Service: &registry.Service{Name: "user", Nodes: []*registry.Node{{Id: "user-3"}}}}
	s := StaleOnError(&quietRegistry{scriptedRegistry{services: listed}, []*registry.Result{deleted}}, time.Second, 10*time.Second, t.Logf).(*staleRegistry)
	s.resync = 10 * time.Millisecond
	w, err := s.Watch(registry.WatchService("user"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if res, err := w.Next(); err != nil || res.Action != "delete" {
		t.Fatalf("first: %+v, %v; want the watch's delete", res, err)
	}
	res, err := w.Next()
	if err != nil || res.Action != "update" || len(res.Service.Nodes) != 1 || res.Service.Nodes[0].Id != "user-1" {
		t.Fatalf("resync: %+v, %v; want an update with user-1 alone", res, err)
	}
}

// TestWatchHoldsDeleteOfLastInstance: a delete that would leave the cache
// with no instance is held; it is dropped for an instance listed again,
// and passed on after the hold for one that is not.
func TestWatchHoldsDeleteOfLastInstance(t *testing.T) {
	event := func(action string, ids ...string) *registry.Result {
		svc := &registry.Service{Name: "user"}
		for _, id := range ids {
			svc.Nodes = append(svc.Nodes, &registry.Node{Id: id})
		}
		return &registry.Result{Action: action, Service: svc}
	}
	both := []*registry.Service{{Name: "user", Nodes: []*registry.Node{{Id: "user-1"}, {Id: "user-2"}}}}
	for _, tc := range []struct {
		name   string
		events []*registry.Result
		want   []string
	}{
		{"listed again", []*registry.Result{event("delete", "user-1"), event("delete", "user-2"), event("update", "user-2"), event("update", "user-3")},
			[]string{"delete user-1", "update user-2", "update user-3"}},
		{"not back", []*registry.Result{event("delete", "user-1"), event("delete", "user-2")},
			[]string{"delete user-1", "delete user-2"}},
		{"another listed", []*registry.Result{event("delete", "user-1", "user-2"), event("update", "user-3")},
			[]string{"update user-3", "delete user-1", "delete user-2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &quietRegistry{scriptedRegistry{services: both}, tc.events}
			s := StaleOnError(q, time.Second, 100*time.Millisecond, t.Logf).(*staleRegistry)
			s.resync = time.Hour
			if _, err := s.GetService("user"); err != nil { // the cache looks up before it watches
				t.Fatal(err)
			}
			w, err := s.Watch(registry.WatchService("user"))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Stop()
			var got []string
			for len(got) < len(tc.want) {
				res, err := w.Next()
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range res.Service.Nodes {
					got = append(got, res.Action+" "+n.Id)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("events %v, want %v", got, tc.want)
			}
		})
	}
}

// laggingRegistry lists nothing on its first lookup, as an etcd member a
// moment behind, and then what it was given.
type laggingRegistry struct {
	registry.Registry
	services []*registry.Service
	lookups  int
}

func (l *laggingRegistry) GetService(string, ...registry.GetOption) ([]*registry.Service, error) {
	l.lookups++
	if l.lookups == 1 {
		return nil, registry.ErrNotFound
	}
	return l.services, nil
}

// TestStaleAsksAgainWhenFirstListsNone: with no earlier answer to fall back
// on, a lookup that lists no instance is sent again before the caller is
// told there is none.
func TestStaleAsksAgainWhenFirstListsNone(t *testing.T) {
	up := []*registry.Service{{Name: "hello", Nodes: []*registry.Node{{Id: "hello-1"}}}}
	s := StaleOnError(&laggingRegistry{services: up}, time.Second, 10*time.Second, t.Logf)
	svcs, err := s.GetService("hello")
	if err != nil || countNodes(svcs) != 1 {
		t.Fatalf("first lookup: %v, %v; want hello-1, listed by the second read", svcs, err)
	}
}

// stuckRegistry answers GetService as scripted: the services, an error, or
// not at all until the test ends.
type stuckRegistry struct {
	registry.Registry
	services []*registry.Service
	mu       sync.Mutex
	err      error
	stuck    chan struct{} // non-nil: GetService waits on it
}

func (r *stuckRegistry) GetService(string, ...registry.GetOption) ([]*registry.Service, error) {
	r.mu.Lock()
	err, stuck := r.err, r.stuck
	r.mu.Unlock()
	if stuck != nil {
		<-stuck
	}
	return r.services, err
}

// TestStaleWaitsLittleWhileFailing: once a lookup of a service has failed,
// the next ones wait only failingBound for the registry, not the whole
// timeout, before answering from the last list.
func TestStaleWaitsLittleWhileFailing(t *testing.T) {
	reg := &stuckRegistry{services: []*registry.Service{{Name: "user", Nodes: []*registry.Node{{Id: "user-1"}}}}}
	s := StaleOnError(reg, time.Hour, 10*time.Second, t.Logf)
	if _, err := s.GetService("user"); err != nil {
		t.Fatal(err)
	}
	reg.mu.Lock()
	reg.err = errors.New("unreachable")
	reg.mu.Unlock()
	if svcs, err := s.GetService("user"); err != nil || countNodes(svcs) != 1 {
		t.Fatalf("registry failing: %v, %v; want the last answer", svcs, err)
	}
	stuck := make(chan struct{})
	t.Cleanup(func() { close(stuck) })
	reg.mu.Lock()
	reg.stuck = stuck
	reg.mu.Unlock()
	got := make(chan int, 1)
	go func() {
		svcs, _ := s.GetService("user")
		got <- countNodes(svcs)
	}()
	select {
	case n := <-got:
		if n != 1 {
			t.Fatalf("registry not answering after a failure: %d instances, want the last answer's 1", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a lookup after a failed one waited on a registry that does not answer (the whole timeout: 1 h)")
	}
}

// slowRegistry answers its first GetService late, after 50 ms.
type slowRegistry struct {
	registry.Registry
	calls, answered atomic.Int64
}

func (h *slowRegistry) GetService(name string, opts ...registry.GetOption) ([]*registry.Service, error) {
	if h.calls.Add(1) == 1 {
		<-time.After(50 * time.Millisecond) // a registry that does not answer in time
	}
	defer h.answered.Add(1)
	return []*registry.Service{{Name: name, Nodes: []*registry.Node{{Id: name + "-1"}}}}, nil
}

// A watch's resync lookup that outlasts its timeout answers after the
// watch has given up on it: the late answer must not race with the watch
// (it wrote the watch's result variable after the watch had returned it;
// -race, seen in TestEtcdPausedPastTTLKeepsCallersCache).
func TestLateResyncAnswer(t *testing.T) {
	reg := &slowRegistry{Registry: registry.NewMemoryRegistry()}
	s := StaleOnError(reg, 10*time.Millisecond, time.Second, t.Logf)
	w, err := s.Watch(registry.WatchService("user"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	rw := w.(*resyncWatcher)
	if svcs, err := rw.lookup(); err == nil || svcs != nil {
		t.Fatalf("lookup past its timeout: %v, %v; want no answer", svcs, err)
	}
	poll.Eventually(t, 5*time.Second, func() error {
		if reg.answered.Load() == 0 {
			return errors.New("the late lookup has not answered yet")
		}
		return nil
	})
	if svcs, err := rw.lookup(); err != nil || countNodes(svcs) != 1 {
		t.Fatalf("lookup in time: %v, %v; want user-1", svcs, err)
	}
}
