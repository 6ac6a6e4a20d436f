package service

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go-micro.dev/v4/registry"

	"github.com/example/micro-starter/internal/poll"
)

// recordingRegistry records the calls that reach it. Register blocks until
// release is closed, when release is set; Deregister fails for a node it
// does not know, as Consul's agent does.
type recordingRegistry struct {
	registry.Registry
	release chan struct{}

	mu    sync.Mutex
	calls []string
	known bool
}

func (r *recordingRegistry) record(call string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call)
}

func (r *recordingRegistry) Register(*registry.Service, ...registry.RegisterOption) error {
	if r.release != nil {
		<-r.release
	}
	r.record("register")
	r.mu.Lock()
	r.known = true
	r.mu.Unlock()
	return nil
}

func (r *recordingRegistry) Deregister(*registry.Service, ...registry.DeregisterOption) error {
	r.record("deregister")
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.known {
		return errors.New("unknown service id")
	}
	r.known = false
	return nil
}

func (r *recordingRegistry) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

var node = &registry.Service{Name: "test", Nodes: []*registry.Node{{Id: "test-1"}}}

func TestDrainingRegistryDropsRegistrationsAfterDeregister(t *testing.T) {
	rec := &recordingRegistry{}
	r := &drainingRegistry{Registry: rec, timeout: 5 * time.Second}
	for _, step := range []func() error{
		func() error { return r.Register(node) },
		func() error { return r.Deregister(node) },
		func() error { return r.Register(node) },   // a re-registration tick during the drain
		func() error { return r.Deregister(node) }, // go-micro's Stop
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := rec.Calls(), []string{"register", "deregister"}; !slices.Equal(got, want) {
		t.Fatalf("calls reaching the registry: %v, want %v", got, want)
	}
}

func TestDrainingRegistryDeregistersAfterRegistrationUnderWay(t *testing.T) {
	rec := &recordingRegistry{release: make(chan struct{})}
	r := &drainingRegistry{Registry: rec, timeout: 5 * time.Second}
	registered := make(chan error, 1)
	go func() { registered <- r.Register(node) }()
	// Wait until the Register holds the lock, then start shutdown.
	poll.Eventually(t, 2*time.Second, func() error {
		if r.mu.TryLock() {
			r.mu.Unlock()
			return errors.New("register not under way yet")
		}
		return nil
	})
	deregistered := make(chan error, 1)
	go func() { deregistered <- r.Deregister(node) }()
	close(rec.release)
	if err := <-registered; err != nil {
		t.Fatal(err)
	}
	if err := <-deregistered; err != nil {
		t.Fatal(err)
	}
	if got, want := rec.Calls(), []string{"register", "deregister"}; !slices.Equal(got, want) {
		t.Fatalf("calls reaching the registry: %v, want %v (the node would stay registered)", got, want)
	}
}

func TestDrainingRegistryRetriesFailedDeregister(t *testing.T) {
	rec := &recordingRegistry{}
	r := &drainingRegistry{Registry: rec, timeout: 5 * time.Second}
	if err := r.Deregister(node); err == nil {
		t.Fatal("deregistering an unknown node: want the registry's error")
	}
	rec.known = true
	if err := r.Deregister(node); err != nil {
		t.Fatalf("second try: %v", err)
	}
}

// TestDrainingRegistryLateAnswerRegisters: a registration answered after the
// bound still registered the instance, and the instance is healthy from
// then on. A Consul agent that syncs with a partitioned server holds its
// answer for seconds while it already has the registration and runs the
// HTTP check; until the next interval's registration the instance answered
// that check 503, the agent marked it critical, and callers dropped it
// (bench/chaos T9).
func TestDrainingRegistryLateAnswerRegisters(t *testing.T) {
	rec := &recordingRegistry{release: make(chan struct{})}
	r := &drainingRegistry{Registry: rec, timeout: 10 * time.Millisecond}
	if err := r.Register(node); err == nil {
		t.Fatal("registration held past the bound: want an error")
	}
	if r.registered.Load() {
		t.Fatal("registered before the registry answered")
	}
	close(rec.release)
	poll.Eventually(t, 5*time.Second, func() error {
		if !r.registered.Load() {
			return errors.New("the late success is not counted")
		}
		if err := r.lastErr(); err != nil {
			return fmt.Errorf("last error %v after the late success", err)
		}
		return nil
	})
}
