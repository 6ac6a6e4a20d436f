package discovery

import (
	"errors"
	"testing"
	"time"

	"go-micro.dev/v4/registry"
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
