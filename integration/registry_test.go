package integration

import (
	"context"
	"net/http"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/example/micro-starter/internal/stack"
)

// forEachRegistry runs test once against a fresh Consul and once against a
// fresh etcd, each in its own subtest.
func forEachRegistry(t *testing.T, test func(t *testing.T, reg *stack.Registry)) {
	skipIfShort(t)
	for _, name := range []string{"consul", "etcd"} {
		t.Run(name, func(t *testing.T) { test(t, stack.MustStartRegistry(t, name)) })
	}
}

// registryClient bounds every call the tests make to a registry server.
var registryClient = &http.Client{Timeout: 2 * time.Second}

// consulChecks returns the types and statuses of the checks Consul runs for
// the instance id.
func consulChecks(tb testing.TB, reg *stack.Registry, id string) []string {
	tb.Helper()
	var checks map[string]struct{ ServiceID, Type, Status string }
	stack.MustGetJSON(tb, registryClient, "http://"+reg.Addr+"/v1/agent/checks", &checks)
	var out []string
	for _, c := range checks {
		if c.ServiceID == id {
			out = append(out, c.Type+" "+c.Status)
		}
	}
	return out
}

// etcdLeaseTTL returns the TTL granted to the lease that holds the key of
// the instance id of service.
func etcdLeaseTTL(tb testing.TB, reg *stack.Registry, service, id string) time.Duration {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rsp, err := reg.Etcd().Get(ctx, "/micro/registry/"+service+"/"+id)
	if err != nil {
		tb.Fatal(err)
	}
	if len(rsp.Kvs) != 1 {
		tb.Fatalf("etcd key of %s: %d keys, want 1", id, len(rsp.Kvs))
	}
	lease, err := reg.Etcd().TimeToLive(ctx, clientv3.LeaseID(rsp.Kvs[0].Lease))
	if err != nil {
		tb.Fatal(err)
	}
	return time.Duration(lease.GrantedTTL) * time.Second
}
