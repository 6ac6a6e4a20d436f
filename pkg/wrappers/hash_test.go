package wrappers

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	grpcserver "github.com/go-micro/plugins/v4/server/grpc"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
)

// Node ids as go-micro makes them (service name, then a UUID), and as
// people name instances by hand: ids that differ in one character are the
// hard case for a weak hash.
var idSets = []struct {
	name string
	ids  func(n int) []string
}{
	{"uuids", func(n int) []string {
		ids := []string{
			"user-4f3c2a90-1b7e-4c1d-9a55-0e6f7d8c9b10",
			"user-b81e0d2c-73a4-4f0b-8c6e-5d2a1f9e7c34",
			"user-0c9d8e7f-6a5b-4c3d-2e1f-0a9b8c7d6e5f",
			"user-e2d4f6a8-0b1c-4d3e-9f5a-7b6c8d0e1f23",
		}
		return ids[:n]
	}},
	{"numbered", func(n int) []string {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("user-%d", i+1)
		}
		return ids
	}},
}

func nodesOf(ids []string) []*registry.Node {
	nodes := make([]*registry.Node, len(ids))
	for i, id := range ids {
		nodes[i] = &registry.Node{Id: id}
	}
	return nodes
}

// owner is the node id key hashes to, the key made as WithHashKey makes it
// for a user id.
func owner(userID string, ids []string) string {
	key, _ := hashKey(WithHashKey(context.Background(), userID))
	return rendezvous(key, nodesOf(ids))[0].Id
}

func userIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("u%07d", i)
	}
	return ids
}

// TestHashSpread: 10,000 keys over three instances, each gets a third
// (+- 5 points).
func TestHashSpread(t *testing.T) {
	for _, set := range idSets {
		t.Run(set.name, func(t *testing.T) {
			ids := set.ids(3)
			keys := userIDs(10000)
			got := map[string]int{}
			for _, k := range keys {
				got[owner(k, ids)]++
			}
			for _, id := range ids {
				share := 100 * float64(got[id]) / float64(len(keys))
				if math.Abs(share-100.0/3) > 5 {
					t.Errorf("%s has %.1f %% of the keys, want 33.3 +- 5 (all: %v)", id, share, got)
				}
			}
		})
	}
}

// TestHashKeysMove: when a fourth instance joins, at most 30 % of keys move
// (a quarter in theory), all to it; when one of three leaves, its keys
// move and no other. A checksum modulo the number of instances moves about
// three quarters on a join.
func TestHashKeysMove(t *testing.T) {
	for _, set := range idSets {
		for _, tc := range []struct {
			name          string
			before, after []string
			maxPercent    int
		}{
			{"fourth joins", set.ids(3), set.ids(4), 30},
			// Its third of the keys, and (checked per key) no other.
			{"one of three leaves", set.ids(3), []string{set.ids(3)[0], set.ids(3)[2]}, 100},
		} {
			t.Run(set.name+"/"+tc.name, func(t *testing.T) {
				keys := userIDs(10000)
				moved, between := 0, 0
				for _, k := range keys {
					was, is := owner(k, tc.before), owner(k, tc.after)
					if was == is {
						continue
					}
					moved++
					// A key may move only off an instance that left, or onto
					// one that joined.
					if slices.Contains(tc.after, was) && slices.Contains(tc.before, is) {
						between++
					}
				}
				if between > 0 {
					t.Errorf("%d keys moved between instances there before and after, want none", between)
				}
				if limit := len(keys) * tc.maxPercent / 100; moved > limit {
					t.Errorf("%d of %d keys moved, want at most %d", moved, len(keys), limit)
				}
				if moved == 0 {
					t.Error("no key moved: the test proves nothing")
				}
			})
		}
	}
}

// keepRegistered is a registry on which deregistering does nothing: an
// instance that stops stays listed, as a crashed one does until its TTL
// runs out.
type keepRegistered struct{ registry.Registry }

func (keepRegistered) Deregister(*registry.Service, ...registry.DeregisterOption) error { return nil }

// serveHandler starts instance of service with handler on loopback and
// returns a function that stops it, leaving it registered in reg.
func serveHandler(tb testing.TB, reg registry.Registry, service, instance string, handler any) (stop func()) {
	tb.Helper()
	srv := grpcserver.NewServer(
		server.Name(service),
		server.Id(instance),
		server.Address("127.0.0.1:0"),
		server.Registry(keepRegistered{reg}),
		server.Broker(broker.NewMemoryBroker()),
		server.RegisterTTL(time.Minute),
	)
	if err := srv.Handle(srv.NewHandler(handler)); err != nil {
		tb.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		tb.Fatal(err)
	}
	var once sync.Once
	stop = func() { once.Do(func() { _ = srv.Stop() }) }
	tb.Cleanup(stop)
	return stop
}

// hashOrder is the order of the instances of service for userID, as
// their registered node ids give it (go-micro makes a node id of the
// service's name and the server's id).
func hashOrder(tb testing.TB, reg registry.Registry, service, userID string) []string {
	tb.Helper()
	services, err := reg.GetService(service)
	if err != nil {
		tb.Fatal(err)
	}
	key, _ := hashKey(WithHashKey(context.Background(), userID))
	var instances []string
	for _, n := range rendezvous(key, flatten(services)) {
		instances = append(instances, strings.TrimPrefix(n.Id, service+"-"))
	}
	return instances
}

func callWithKey(c client.Client, service, userID string) (EchoResponse, error) {
	return call(WithHashKey(context.Background(), userID), c, service)
}

func hashConfig() Config {
	cfg := DefaultConfig()
	cfg.Strategy = "hash"
	return cfg
}

// TestHashSameInstance: calls with one key reach one instance, the one the
// key hashes to, on every call and from two clients that share nothing,
// as two gateways.
func TestHashSameInstance(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	svc := serviceName(t)
	for _, inst := range []string{"a", "b", "c"} {
		mustServe(t, reg, svc, inst)
	}
	callers := []client.Client{mustClient(t, reg, hashConfig()), mustClient(t, reg, hashConfig())}

	used := map[string]bool{}
	// Any UTF-8 a user id may hold travels (gRPC takes only printable
	// ASCII in a header).
	for _, user := range append(userIDs(30), "Ünïcødé 用户") {
		want := hashOrder(t, reg, svc, user)[0]
		used[want] = true
		for i, c := range callers {
			for range 3 {
				rsp, err := callWithKey(c, svc, user)
				if err != nil {
					t.Fatalf("caller %d, key %s: %v", i, user, err)
				}
				if rsp.Instance != want {
					t.Fatalf("caller %d, key %s: answered by %s, want %s", i, user, rsp.Instance, want)
				}
			}
		}
	}
	if len(used) < 2 {
		t.Fatalf("30 keys all hash to %v: the test proves nothing", used)
	}
}

// TestHashWithoutKeyIsRoundRobin: with the hash strategy a call without a
// key (or an empty one) is round robin.
func TestHashWithoutKeyIsRoundRobin(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  context.Context
	}{
		{"no key", context.Background()},
		{"empty key", WithHashKey(context.Background(), "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := registry.NewMemoryRegistry()
			svc := serviceName(t)
			for _, inst := range []string{"a", "b", "c"} {
				mustServe(t, reg, svc, inst)
			}
			c := mustClient(t, reg, hashConfig())
			seen := map[string]int{}
			for range 9 {
				rsp, err := call(tc.ctx, c, svc)
				if err != nil {
					t.Fatal(err)
				}
				seen[rsp.Instance]++
			}
			if seen["a"] != 3 || seen["b"] != 3 || seen["c"] != 3 {
				t.Fatalf("9 calls over three instances: %v, want 3 each", seen)
			}
		})
	}
}

// TestHashFailover: when the instance keys hash to is dead or ejected, its
// keys go to the next instance in their order (the second-highest score)
// with no failed call, and no other key moves.
func TestHashFailover(t *testing.T) {
	for _, tc := range []struct {
		name string
		// fail takes instance b out, as its name says.
		fail func(stop func(), outliers *Outliers, nodeID string)
		// reached: whether a call may still reach b (it tries it and fails
		// over) or must not (it goes last).
		reached bool
	}{
		{"crashed, still registered", func(stop func(), _ *Outliers, _ string) { stop() }, true},
		{"ejected", func(_ func(), o *Outliers, id string) {
			for range o.Consecutive {
				o.observe(id, true)
			}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := registry.NewMemoryRegistry()
			svc := serviceName(t)
			echoes, stops := map[string]*Echo{}, map[string]func(){}
			for _, inst := range []string{"a", "b", "c"} {
				echoes[inst] = &Echo{instance: inst}
				stops[inst] = serveHandler(t, reg, svc, inst, echoes[inst])
			}
			outliers := NewOutliers(outlierFailures, outlierCooldown)
			c := newClient(reg, hashConfig(), outliers)

			users := userIDs(150)
			for _, user := range users {
				rsp, err := callWithKey(c, svc, user)
				if want := hashOrder(t, reg, svc, user)[0]; err != nil || rsp.Instance != want {
					t.Fatalf("key %s before: %v, answered by %q, want %s", user, err, rsp.Instance, want)
				}
			}

			tc.fail(stops["b"], outliers, svc+"-b")
			callsToB := echoes["b"].calls.Load()
			failed, moved := 0, 0
			for _, user := range users {
				order := hashOrder(t, reg, svc, user)
				want := order[0]
				if want == "b" {
					want = order[1]
					moved++
				}
				rsp, err := callWithKey(c, svc, user)
				if err != nil {
					failed++
					t.Logf("key %s: %v", user, err)
				} else if rsp.Instance != want {
					t.Errorf("key %s: answered by %s, want %s (its order %v)", user, rsp.Instance, want, order)
				}
			}
			if failed > 0 {
				t.Fatalf("%d of %d calls failed", failed, len(users))
			}
			if moved == 0 {
				t.Fatal("no key hashes to b: the test proves nothing")
			}
			if got := echoes["b"].calls.Load() - callsToB; !tc.reached && got > 0 {
				t.Errorf("the ejected instance got %d calls, want none (it goes last)", got)
			}
		})
	}
}

// Relay is a service that calls back, the Echo service, with its
// handler's context, as hello calls user.
type Relay struct {
	c    client.Client
	back string
}

func (r *Relay) Call(ctx context.Context, req *EchoRequest, rsp *EchoResponse) error {
	got, err := call(ctx, r.c, r.back)
	*rsp = got
	return err
}

// TestHashKeyTravelsDownstream: a key set by the first caller reaches the
// second hop. go-micro's server puts the metadata of the call it serves in
// the handler's context and its client sends that on, so a service in the
// middle need do nothing for its calls to be hashed by the same key.
func TestHashKeyTravelsDownstream(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	back, front := serviceName(t)+"-back", serviceName(t)+"-front"
	for _, inst := range []string{"a", "b", "c"} {
		mustServe(t, reg, back, inst)
	}
	serveHandler(t, reg, front, "relay", &Relay{c: mustClient(t, reg, hashConfig()), back: back})
	c := mustClient(t, reg, DefaultConfig())

	for _, user := range userIDs(30) {
		var rsp EchoResponse
		req := c.NewRequest(front, "Relay.Call", &EchoRequest{Text: "hi"}, client.WithContentType("application/json"))
		if err := c.Call(WithHashKey(context.Background(), user), req, &rsp); err != nil {
			t.Fatalf("key %s: %v", user, err)
		}
		if want := hashOrder(t, reg, back, user)[0]; rsp.Instance != want {
			t.Fatalf("key %s: the second hop went to %s, want %s", user, rsp.Instance, want)
		}
	}
}

// TestWithHashKeyHeader: whatever the key, the header is 32 hex digits, as
// gRPC takes (printable ASCII), and one key always gives one header.
func TestWithHashKeyHeader(t *testing.T) {
	for _, key := range []string{"ada", "Ünïcødé 用户", "line\nbreak", strings.Repeat("x", 128)} {
		ctx := WithHashKey(context.Background(), key)
		got, ok := metadata.Get(ctx, HashKeyHeader)
		if !ok || len(got) != 32 || strings.Trim(got, "0123456789abcdef") != "" {
			t.Errorf("WithHashKey(%q): header %q, want 32 hex digits", key, got)
		}
		if again, _ := metadata.Get(WithHashKey(context.Background(), key), HashKeyHeader); again != got {
			t.Errorf("WithHashKey(%q) gave %q, then %q", key, got, again)
		}
	}
}

// TestHashKeyKeepsTheBreaker: a key picks where a call starts and nothing
// else. Calls to a failing service open its circuit whatever keys they
// carry, a new key for every call included.
func TestHashKeyKeepsTheBreaker(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	svc := serviceName(t)
	for _, inst := range []string{"a", "b"} {
		mustServe(t, reg, svc, inst).fail.Store(merrors.InternalServerError(svc, "broken").(*merrors.Error))
	}
	cfg := hashConfig()
	c := mustClient(t, reg, cfg)

	// The volume threshold, plus a few calls for hystrix-go's health
	// snapshot to catch up, as in TestBreakerOpensOnServerErrorsAndCloses.
	limit := cfg.Breaker.VolumeThreshold + 10
	for i := range limit {
		_, err := callWithKey(c, svc, fmt.Sprintf("user-%d", i))
		switch code(err) {
		case 500:
		case 503:
			return // open
		default:
			t.Fatalf("call %d: %v, want 500 or 503", i, err)
		}
	}
	t.Fatalf("circuit still closed after %d failed calls with %d keys", limit, limit)
}

// A call's round-robin order is its walk alone (a closure and its count):
// the instances are sorted once per list the selector hands out, which it
// never changes (a copy per call, rotated in place, before: 3 allocations;
// a rotated second copy before that: 4).
func TestRoundRobinOrderAllocations(t *testing.T) {
	services := []*registry.Service{{Name: "s", Nodes: []*registry.Node{{Id: "a"}, {Id: "b"}, {Id: "c"}}}}
	rr := &roundRobin{outliers: NewOutliers(outlierFailures, outlierCooldown)}
	rr.order(services) // the service's counter
	allocs := testing.AllocsPerRun(1000, func() {
		next := rr.order(services)
		if _, err := next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 2 {
		t.Errorf("%.1f allocations per order, want at most 2", allocs)
	}
}

// The order follows the selector's list when it is replaced, and walks
// every instance once from a start that moves by one per call; an ejected
// instance goes last.
func TestRoundRobinOrderFollowsTheList(t *testing.T) {
	outliers := NewOutliers(1, time.Hour)
	rr := &roundRobin{outliers: outliers}
	walked := func(services []*registry.Service) string {
		next := rr.order(services)
		var ids []string
		for range countNodes(services) {
			n, err := next()
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, n.Id)
		}
		return strings.Join(ids, "")
	}
	list := func(ids ...string) []*registry.Service {
		s := &registry.Service{Name: "s"}
		for _, id := range ids {
			s.Nodes = append(s.Nodes, &registry.Node{Id: id})
		}
		return []*registry.Service{s}
	}
	two := list("b", "a")
	for _, want := range []string{"ab", "ba", "ab"} {
		if got := walked(two); got != want {
			t.Fatalf("two instances: walked %s, want %s", got, want)
		}
	}
	three := list("c", "b", "a")                         // the selector's next list: user c joined
	for _, want := range []string{"abc", "bca", "cab"} { // the count goes on
		if got := walked(three); got != want {
			t.Fatalf("three instances: walked %s, want %s", got, want)
		}
	}
	outliers.observe("b", true)
	for _, want := range []string{"acb", "cab", "cab"} {
		if got := walked(three); got != want {
			t.Fatalf("b ejected: walked %s, want %s", got, want)
		}
	}
}

func countNodes(services []*registry.Service) int {
	n := 0
	for _, s := range services {
		n += len(s.Nodes)
	}
	return n
}
