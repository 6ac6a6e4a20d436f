package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"go-micro.dev/v4/registry"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/example/micro-starter/internal/poll"
)

// registryServer is a registry server started for one test.
type registryServer interface {
	Name() string    // the services' --registry value
	Address() string // the services' --registry_address value
	// Instances lists the instances of service that the registry would hand
	// out, as its own API reports them.
	Instances(tb testing.TB, service string) []instance
	// Process is the server's process, to pause or stop it.
	Process() *process
}

type instance struct {
	ID      string // <service>-<uuid>
	Address string // host:port of its RPC server
}

// forEachRegistry runs test once against a fresh Consul and once against a
// fresh etcd, each in its own subtest.
func forEachRegistry(t *testing.T, test func(t *testing.T, reg registryServer)) {
	skipIfShort(t)
	for _, r := range []struct {
		name  string
		start func(testing.TB) registryServer
	}{
		{"consul", func(tb testing.TB) registryServer { return mustStartConsul(tb) }},
		{"etcd", func(tb testing.TB) registryServer { return mustStartEtcd(tb) }},
	} {
		t.Run(r.name, func(t *testing.T) { test(t, r.start(t)) })
	}
}

// lookPath finds a registry server binary; a missing one fails rather than
// skips, so that a broken setup never looks like a green run.
func lookPath(tb testing.TB, name string) string {
	tb.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		tb.Fatalf("%s not on PATH: run make tools (make test does this)", name)
	}
	return path
}

// registryClient bounds every call the tests make to a registry server.
var registryClient = &http.Client{Timeout: 2 * time.Second}

type consulServer struct {
	addr string
	proc *process
}

// mustStartConsul starts a single-node Consul agent in dev mode (in memory,
// its own leader) with every port on 127.0.0.1 and DNS and gRPC off.
func mustStartConsul(tb testing.TB) *consulServer {
	tb.Helper()
	ports := freePorts(tb, 4)
	s := &consulServer{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))}
	p := mustStart(tb, "consul", lookPath(tb, "consul"), "agent", "-dev", "-node", "test",
		"-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-http-port", strconv.Itoa(ports[0]), "-dns-port", "-1", "-grpc-port", "-1",
		"-serf-lan-port", strconv.Itoa(ports[1]), "-serf-wan-port", strconv.Itoa(ports[2]),
		"-server-port", strconv.Itoa(ports[3]))
	poll.Eventually(tb, 30*time.Second, func() error {
		if p.exited() {
			tb.Fatalf("consul exited at start: %v", p.err)
		}
		var leader string
		if err := s.get("/v1/status/leader", &leader); err != nil {
			return err
		}
		if leader == "" {
			return fmt.Errorf("consul has no leader yet")
		}
		return nil
	})
	s.proc = p
	return s
}

func (s *consulServer) Name() string      { return "consul" }
func (s *consulServer) Address() string   { return s.addr }
func (s *consulServer) Process() *process { return s.proc }

func (s *consulServer) Instances(tb testing.TB, service string) []instance {
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
	if err := s.get("/v1/health/service/"+service+"?passing=true", &entries); err != nil {
		tb.Fatal(err)
	}
	var is []instance
	for _, e := range entries {
		is = append(is, instance{e.Service.ID, net.JoinHostPort(e.Service.Address, strconv.Itoa(e.Service.Port))})
	}
	return is
}

func (s *consulServer) get(path string, v any) error {
	rsp, err := registryClient.Get("http://" + s.addr + path)
	if err != nil {
		return err
	}
	defer rsp.Body.Close()
	if rsp.StatusCode != http.StatusOK {
		return fmt.Errorf("consul GET %s: %s", path, rsp.Status)
	}
	return json.NewDecoder(rsp.Body).Decode(v)
}

type etcdServer struct {
	addr   string
	proc   *process
	client *clientv3.Client
}

// mustStartEtcd starts a single-member etcd cluster on 127.0.0.1 with its
// data in a temporary directory.
func mustStartEtcd(tb testing.TB) *etcdServer {
	tb.Helper()
	ports := freePorts(tb, 2)
	s := &etcdServer{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))}
	client := "http://" + s.addr
	peer := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
	p := mustStart(tb, "etcd", lookPath(tb, "etcd"), "--name", "default", "--data-dir", tb.TempDir(),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "default="+peer)
	poll.Eventually(tb, 30*time.Second, func() error {
		if p.exited() {
			tb.Fatalf("etcd exited at start: %v", p.err)
		}
		rsp, err := registryClient.Get(client + "/health")
		if err != nil {
			return err
		}
		defer rsp.Body.Close()
		var health struct{ Health string }
		if err := json.NewDecoder(rsp.Body).Decode(&health); err != nil {
			return err
		}
		if health.Health != "true" {
			return fmt.Errorf("etcd not healthy yet: health %q", health.Health)
		}
		return nil
	})
	s.proc = p
	var err error
	s.client, err = clientv3.New(clientv3.Config{Endpoints: []string{s.addr}, DialTimeout: 2 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.client.Close() })
	return s
}

func (s *etcdServer) Name() string      { return "etcd" }
func (s *etcdServer) Address() string   { return s.addr }
func (s *etcdServer) Process() *process { return s.proc }

// Instances reads the keys go-micro's etcd registry writes: one per
// instance under /micro/registry/<service>/, each a JSON registry.Service
// with that one node, held by a lease of the register TTL.
func (s *etcdServer) Instances(tb testing.TB, service string) []instance {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rsp, err := s.client.Get(ctx, "/micro/registry/"+service+"/", clientv3.WithPrefix())
	if err != nil {
		tb.Fatal(err)
	}
	var is []instance
	for _, kv := range rsp.Kvs {
		var svc registry.Service
		if err := json.Unmarshal(kv.Value, &svc); err != nil {
			tb.Fatalf("etcd key %s: %v", kv.Key, err)
		}
		for _, n := range svc.Nodes {
			is = append(is, instance{n.Id, n.Address})
		}
	}
	return is
}

// checks returns the types and statuses of the checks Consul runs for the
// instance id.
func (s *consulServer) checks(tb testing.TB, id string) []string {
	tb.Helper()
	var checks map[string]struct{ ServiceID, Type, Status string }
	if err := s.get("/v1/agent/checks", &checks); err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, c := range checks {
		if c.ServiceID == id {
			out = append(out, c.Type+" "+c.Status)
		}
	}
	return out
}

// leaseTTL returns the TTL granted to the lease that holds the key of the
// instance id of service.
func (s *etcdServer) leaseTTL(tb testing.TB, service, id string) time.Duration {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rsp, err := s.client.Get(ctx, "/micro/registry/"+service+"/"+id)
	if err != nil || len(rsp.Kvs) != 1 {
		tb.Fatalf("etcd key of %s: %v (%d keys)", id, err, len(rsp.Kvs))
	}
	lease, err := s.client.TimeToLive(ctx, clientv3.LeaseID(rsp.Kvs[0].Lease))
	if err != nil {
		tb.Fatal(err)
	}
	return time.Duration(lease.GrantedTTL) * time.Second
}
