package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"go-micro.dev/v4/registry"
)

// brokenRegistry is a registry whose lookups fail with err, after waiting
// for block to be closed if it is not nil.
type brokenRegistry struct {
	registry.Registry
	err   error
	block chan struct{}
}

func (r *brokenRegistry) GetService(string, ...registry.GetOption) ([]*registry.Service, error) {
	if r.block != nil {
		<-r.block
	}
	return nil, r.err
}

func memoryWith(tb testing.TB, services ...string) registry.Registry {
	tb.Helper()
	reg := registry.NewMemoryRegistry()
	for _, name := range services {
		s := &registry.Service{Name: name, Nodes: []*registry.Node{{Id: name + "-1", Address: "127.0.0.1:1"}}}
		if err := reg.Register(s); err != nil {
			tb.Fatal(err)
		}
	}
	return reg
}

// TestReadiness: each reason the gateway is not ready is told apart, in
// general terms, with what the registry said kept for the log.
func TestReadiness(t *testing.T) {
	refused := errors.New(`Get "http://127.0.0.1:8500/v1/health/service/user": dial tcp 127.0.0.1:8500: connect: connection refused`)
	denied := errors.New("Unexpected response code: 403 (ACL not found)") // consul/api's words for a revoked token
	blocked := make(chan struct{})
	t.Cleanup(func() { close(blocked) })
	tests := []struct {
		name       string
		reg        registry.Registry
		draining   bool
		wantReason string // "": ready
		wantErr    error  // the detail kept, if any
	}{
		{"ready", memoryWith(t, "user", "hello"), false, "", nil},
		{"shutting down", memoryWith(t, "user", "hello"), true, "shutting down", nil},
		{"nothing registered", memoryWith(t), false, "no instance of user", nil},
		{"no hello", memoryWith(t, "user"), false, "no instance of hello", nil},
		{"registry fails", &brokenRegistry{err: refused}, false, "registry unreachable", refused},
		{"registry refuses", &brokenRegistry{err: denied}, false, "registry refused access", denied},
		{"registry silent", &brokenRegistry{block: blocked}, false, "registry unreachable", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ready := readiness(tt.reg, 50*time.Millisecond, func() bool { return tt.draining }, "user", "hello")
			err := ready(context.Background())
			if tt.wantReason == "" {
				if err != nil {
					t.Fatalf("ready = %v, want nil", err)
				}
				return
			}
			var nr *notReady
			if !errors.As(err, &nr) {
				t.Fatalf("ready = %v, want a *notReady", err)
			}
			if nr.reason != tt.wantReason {
				t.Errorf("reason %q, want %q", nr.reason, tt.wantReason)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("ready = %v, want it to keep %v", err, tt.wantErr)
			}
		})
	}
}
