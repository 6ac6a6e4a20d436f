//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"net"
	"strconv"
	"testing"
	"time"

	"go-micro.dev/v4/registry"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// registryAPI reads a registry through its own API, on its published port.
type registryAPI interface {
	// Instances maps the id of each instance of service that the registry
	// would hand out to the host:port it registered.
	Instances(tb testing.TB, service string) map[string]string
}

type consulAPI struct{ addr string }

func newConsulAPI(_ testing.TB, s *stack) registryAPI { return consulAPI{s.consul} }

func (c consulAPI) Instances(tb testing.TB, service string) map[string]string {
	tb.Helper()
	// passing=true leaves out instances whose TTL check has expired, as the
	// services' own lookups do.
	var entries []struct {
		Service struct {
			ID      string
			Address string
			Port    int
		}
	}
	mustGetJSON(tb, "http://"+c.addr+"/v1/health/service/"+service+"?passing=true", &entries)
	is := map[string]string{}
	for _, e := range entries {
		is[e.Service.ID] = net.JoinHostPort(e.Service.Address, strconv.Itoa(e.Service.Port))
	}
	return is
}

type etcdAPI struct{ client *clientv3.Client }

func newEtcdAPI(tb testing.TB, s *stack) registryAPI {
	tb.Helper()
	client, err := clientv3.New(clientv3.Config{Endpoints: []string{s.etcd}, DialTimeout: 5 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { client.Close() })
	return etcdAPI{client}
}

// Instances reads the keys go-micro's etcd registry writes: one per
// instance under /micro/registry/<service>/, each a JSON registry.Service
// with that one node, held by a lease of the register TTL.
func (e etcdAPI) Instances(tb testing.TB, service string) map[string]string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rsp, err := e.client.Get(ctx, "/micro/registry/"+service+"/", clientv3.WithPrefix())
	if err != nil {
		tb.Fatalf("etcd: %v", err)
	}
	is := map[string]string{}
	for _, kv := range rsp.Kvs {
		var svc registry.Service
		if err := json.Unmarshal(kv.Value, &svc); err != nil {
			tb.Fatalf("etcd key %s: %v", kv.Key, err)
		}
		for _, n := range svc.Nodes {
			is[n.Id] = n.Address
		}
	}
	return is
}
