package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/go-micro/plugins/v4/registry/etcd"
	"go-micro.dev/v4/registry"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// etcdRegistration replaces the Register and Deregister of go-micro's etcd
// plugin (registry/etcd v1.2.0) and keeps its lookups and watches. It
// writes the same keys: /micro/registry/<service>/<node id>, a JSON
// registry.Service with that one node, under a lease of the register TTL.
//
// Two defects of the plugin make an instance miss re-registration after an
// etcd outage, so they are replaced here rather than patched in a fork:
//   - it renews the lease with KeepAliveOnce(context.TODO()), which blocks
//     for as long as etcd is unreachable, and so does the server's
//     re-registration loop, and with it Stop;
//   - its client reconnects with gRPC's default backoff, up to 120 s between
//     tries, so a blocked renewal can go on long after etcd is back.
//
// Here every call is bounded by timeout and the client retries the
// connection at least once a second.
type etcdRegistration struct {
	registry.Registry // the plugin, for GetService, ListServices, Watch
	client            *clientv3.Client
	timeout           time.Duration

	mu     sync.Mutex
	leases map[string]clientv3.LeaseID // node key -> its lease
}

// defaultEtcdAddress is where etcd listens when nothing says otherwise, as
// in the plugin.
const defaultEtcdAddress = "127.0.0.1:2379"

// newEtcdPlugin builds go-micro's etcd registry on c's addresses alone. The
// plugin appends MICRO_REGISTRY_ADDRESS from the environment after the
// options it is given, so the variable would beat --registry_address for
// lookups while registration (etcdRegistration) followed the flag. Init
// applies our addresses last; the plugin's first client, built on the
// variable's address, dials in the background and is never used.
func newEtcdPlugin(c Config, opts ...registry.Option) (registry.Registry, error) {
	r := etcd.NewRegistry(opts...)
	if os.Getenv("MICRO_REGISTRY_ADDRESS") == "" {
		return r, nil
	}
	if err := r.Init(registry.Addrs(etcdAddresses(c.Addresses)...)); err != nil {
		return nil, err
	}
	return r, nil
}

func etcdAddresses(addrs []string) []string {
	if len(addrs) == 0 {
		return []string{defaultEtcdAddress}
	}
	return addrs
}

func newEtcdRegistration(plugin registry.Registry, addrs []string, timeout time.Duration) (*etcdRegistration, error) {
	addrs = etcdAddresses(addrs)
	// No DialTimeout: the connection is made in the background, so building
	// the registry does not need etcd up.
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: addrs,
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		})},
	})
	if err != nil {
		return nil, err
	}
	return &etcdRegistration{Registry: plugin, client: cli, timeout: timeout, leases: map[string]clientv3.LeaseID{}}, nil
}

func etcdKey(service, node string) string {
	return path.Join("/micro/registry", strings.ReplaceAll(service, "/", "-"), strings.ReplaceAll(node, "/", "-"))
}

func (e *etcdRegistration) Register(s *registry.Service, opts ...registry.RegisterOption) error {
	if len(s.Nodes) == 0 {
		return errors.New("register: no node")
	}
	var o registry.RegisterOptions
	for _, opt := range opts {
		opt(&o)
	}
	ttl := int64(o.TTL.Seconds())
	if ttl < 1 {
		ttl = 1 // the plugin panics on 0; a key that never expires outlives a crash
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	for _, n := range s.Nodes {
		if err := e.registerNode(ctx, s, n, ttl); err != nil {
			return err
		}
	}
	return nil
}

func (e *etcdRegistration) registerNode(ctx context.Context, s *registry.Service, n *registry.Node, ttl int64) error {
	key := etcdKey(s.Name, n.Id)
	e.mu.Lock()
	lease, ok := e.leases[key]
	e.mu.Unlock()
	if ok {
		_, err := e.client.KeepAliveOnce(ctx, lease)
		if err == nil {
			return nil // the key lives as long as its lease
		}
		if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return err
		}
		// The lease expired while etcd was away: write the key again.
	}
	grant, err := e.client.Grant(ctx, ttl)
	if err != nil {
		return err
	}
	value, err := json.Marshal(&registry.Service{
		Name: s.Name, Version: s.Version, Metadata: s.Metadata, Endpoints: s.Endpoints,
		Nodes: []*registry.Node{n},
	})
	if err != nil {
		return err
	}
	if _, err := e.client.Put(ctx, key, string(value), clientv3.WithLease(grant.ID)); err != nil {
		return err
	}
	e.mu.Lock()
	e.leases[key] = grant.ID
	e.mu.Unlock()
	return nil
}

func (e *etcdRegistration) Deregister(s *registry.Service, _ ...registry.DeregisterOption) error {
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	for _, n := range s.Nodes {
		key := etcdKey(s.Name, n.Id)
		if _, err := e.client.Delete(ctx, key); err != nil {
			return err
		}
		e.mu.Lock()
		lease, ok := e.leases[key]
		delete(e.leases, key)
		e.mu.Unlock()
		if ok {
			_, _ = e.client.Revoke(ctx, lease) // the key is gone; the lease would expire anyway
		}
	}
	return nil
}
