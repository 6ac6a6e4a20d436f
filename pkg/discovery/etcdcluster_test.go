package discovery

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go-micro.dev/v4/registry"

	"github.com/example/micro-starter/internal/stack"
)

// TestEtcdRegistrationSkipsPausedMember: against a three-member etcd with
// one member paused (alive, its connections open, answering nothing: a
// partition), every renewal and deregistration still succeeds well within
// the client's timeout. The client sends each call
// to the next member in turn, so without a bound per attempt every third
// call waited on the paused member until the caller gave up.
func TestEtcdRegistrationSkipsPausedMember(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an etcd cluster")
	}
	c := stack.MustStartCluster(t, "etcd")
	r, err := New(Config{Name: "etcd", Addresses: c.Addrs(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const n = 6
	var svcs []*registry.Service
	for i := range n {
		s := &registry.Service{Name: "user", Nodes: []*registry.Node{{Id: fmt.Sprintf("user-%d", i), Address: "127.0.0.1:1"}}}
		if err := r.Register(s, registry.RegisterTTL(10*time.Second)); err != nil {
			t.Fatal(err)
		}
		svcs = append(svcs, s)
	}
	follower, err := c.Follower()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Pause(follower); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Resume(follower) })

	// The service bounds each registry call at 1 s; the test allows 2 s, as
	// packages test side by side on CI's two cores, and a call still waiting
	// on the paused member (no resend) runs into the client's 5 s timeout.
	bounded := func(fn func() error) error { return Call(context.Background(), 2*time.Second, fn) }
	for _, s := range svcs {
		if err := bounded(func() error { return r.Register(s, registry.RegisterTTL(10*time.Second)) }); err != nil {
			t.Errorf("renewing %s with %s paused: %v", s.Nodes[0].Id, follower.Name, err)
		}
	}
	for _, s := range svcs {
		if err := bounded(func() error { return r.Deregister(s) }); err != nil {
			t.Errorf("deregistering %s with %s paused: %v", s.Nodes[0].Id, follower.Name, err)
		}
	}
	if err := c.Resume(follower); err != nil {
		t.Fatal(err)
	}
	if ids, err := c.IDs("user"); err != nil || len(ids) != 0 {
		t.Errorf("after deregistering all: %v listed (%v)", ids, err)
	}
}
