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
	"go.uber.org/zap"
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
//
// With a username, etcd's client logs in when it is built, which needs etcd
// up and the right password. So both clients, the plugin's and ours, log in
// on the first call (usually Ping's) rather than in New, and again on the
// next call if that failed: the plugin would drop the error and leave a nil
// client behind.
type etcdRegistration struct {
	registry.Registry // the plugin, for GetService, ListServices, Watch
	timeout           time.Duration

	connMu sync.Mutex
	client *clientv3.Client  // nil until connect succeeds
	cfg    clientv3.Config   // what client is built with
	login  []registry.Option // what the plugin still has to log in with; nil once done

	mu     sync.Mutex
	leases map[string]clientv3.LeaseID // node key -> its lease
}

// defaultEtcdAddress is where etcd listens when nothing says otherwise, as
// in the plugin.
const defaultEtcdAddress = "127.0.0.1:2379"

// newEtcdPlugin builds go-micro's etcd registry on c's addresses and TLS
// alone. The plugin appends MICRO_REGISTRY_ADDRESS, ETCD_USERNAME and
// ETCD_PASSWORD from the environment after the options it is given, so the
// variables would beat our settings for lookups while registration
// (etcdRegistration) followed them. Init applies ours last (see
// etcdRegistration.connect); the plugin's first client, built with the
// variables, dials in the background and is never used.
func newEtcdPlugin(c Config, opts ...registry.Option) (registry.Registry, error) {
	tlsConf, err := c.TLS.config()
	if err != nil {
		return nil, err
	}
	if tlsConf != nil {
		opts = append(opts, registry.TLSConfig(tlsConf))
	}
	return etcd.NewRegistry(append(opts, etcd.LogConfig(etcdLogConfig()))...), nil
}

// etcdLogConfig keeps etcd's client quiet but for errors: each failed call
// is returned to us and logged once by the service, and its own warnings
// would add JSON lines to stderr, which holds a failed start's one line.
// No sampling: zap's sampler holds 448 KiB of counters per client (a third
// of an idle instance's heap, TestEtcdLoggerHoldsLittle), and it thins only
// past 100 lines a second of one message, which the client's few error
// lines, paced by its backoff and our calls, do not reach.
func etcdLogConfig() *zap.Config {
	c := zap.NewProductionConfig()
	c.Level = zap.NewAtomicLevelAt(zap.ErrorLevel)
	c.Sampling = nil
	return &c
}

// etcdLogin is what the plugin must be given again after NewRegistry: our
// addresses and credentials (none clears those of ETCD_USERNAME and
// ETCD_PASSWORD); nil if the environment changed nothing and there are
// no credentials.
func etcdLogin(c Config) []registry.Option {
	env := os.Getenv("MICRO_REGISTRY_ADDRESS") != "" || (os.Getenv("ETCD_USERNAME") != "" && os.Getenv("ETCD_PASSWORD") != "")
	if !env && c.Username == "" {
		return nil
	}
	return []registry.Option{registry.Addrs(etcdAddresses(c.Addresses)...), etcd.Auth(c.Username, string(c.Password))}
}

func etcdAddresses(addrs []string) []string {
	if len(addrs) == 0 {
		return []string{defaultEtcdAddress}
	}
	return addrs
}

func newEtcdRegistration(plugin registry.Registry, c Config) (*etcdRegistration, error) {
	tlsConf, err := c.TLS.config()
	if err != nil {
		return nil, err
	}
	e := &etcdRegistration{Registry: plugin, timeout: c.Timeout, login: etcdLogin(c), leases: map[string]clientv3.LeaseID{}}
	e.cfg = clientv3.Config{
		Endpoints: etcdAddresses(c.Addresses),
		TLS:       tlsConf,
		Username:  c.Username,
		Password:  string(c.Password),
		// Without a username the connection is made in the background
		// and this bounds nothing; with one, it bounds the login.
		DialTimeout: c.Timeout,
		LogConfig:   etcdLogConfig(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		})},
	}
	if c.Username == "" {
		// Nothing to log in to: connect now, as the plugin does, so that
		// no call waits on it.
		if _, err := e.connect(); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// connect logs the plugin in with our settings and builds our client, once
// both succeed; a failure is tried again on the next call.
func (e *etcdRegistration) connect() (*clientv3.Client, error) {
	e.connMu.Lock()
	defer e.connMu.Unlock()
	if e.client != nil {
		return e.client, nil
	}
	if e.login != nil {
		if err := e.Registry.Init(e.login...); err != nil {
			return nil, err
		}
		e.login = nil
	}
	cli, err := clientv3.New(e.cfg)
	if err != nil {
		return nil, err
	}
	e.client = cli
	return cli, nil
}

func (e *etcdRegistration) GetService(name string, opts ...registry.GetOption) ([]*registry.Service, error) {
	if _, err := e.connect(); err != nil {
		return nil, err
	}
	return e.Registry.GetService(name, opts...)
}

func (e *etcdRegistration) ListServices(opts ...registry.ListOption) ([]*registry.Service, error) {
	if _, err := e.connect(); err != nil {
		return nil, err
	}
	return e.Registry.ListServices(opts...)
}

func (e *etcdRegistration) Watch(opts ...registry.WatchOption) (registry.Watcher, error) {
	if _, err := e.connect(); err != nil {
		return nil, err
	}
	return e.Registry.Watch(opts...)
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
	cli, err := e.connect()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	for _, n := range s.Nodes {
		if err := e.registerNode(ctx, cli, s, n, ttl); err != nil {
			return err
		}
	}
	return nil
}

// etcdHedge is how long a call to etcd may go unanswered before the same
// call is also sent again, without giving up on the first. The client sends
// each call to the next member in turn, and a member that is paused or cut
// off keeps its connection open and never answers: without a second copy,
// every third renewal or deregistration waited on it until the caller gave
// up (seen: a deregistration 2 s late, renewals missed). Not cancelled,
// because a member that is only slow (a loaded disk: fdatasync took 1.3 s in
// a test run) must still be able to answer, refusal included.
const etcdHedge = 500 * time.Millisecond

// hedged runs call, and again every etcdHedge while no copy has answered,
// up to one copy per member (3), and returns the first answer: a success or
// the registry's error. Every call given is safe to repeat.
func hedged[T any](ctx context.Context, call func(ctx context.Context) (T, error)) (T, error) {
	type answer struct {
		v   T
		err error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // the copies still waiting
	answers := make(chan answer, 3)
	send := func() {
		go func() {
			v, err := call(ctx)
			answers <- answer{v, err}
		}()
	}
	send()
	sent := 1
	tick := time.NewTicker(etcdHedge)
	defer tick.Stop()
	for {
		select {
		case a := <-answers:
			return a.v, a.err
		case <-tick.C:
			if sent < cap(answers) {
				send()
				sent++
			}
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		}
	}
}

func (e *etcdRegistration) registerNode(ctx context.Context, cli *clientv3.Client, s *registry.Service, n *registry.Node, ttl int64) error {
	key := etcdKey(s.Name, n.Id)
	e.mu.Lock()
	lease, ok := e.leases[key]
	e.mu.Unlock()
	if ok {
		_, err := hedged(ctx, func(ctx context.Context) (*clientv3.LeaseKeepAliveResponse, error) {
			return cli.KeepAliveOnce(ctx, lease)
		})
		if err == nil {
			return nil // the key lives as long as its lease
		}
		if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return err
		}
		// The lease expired while etcd was away: write the key again.
	}
	// A grant sent twice leaves a lease with no key, which expires with
	// its TTL.
	grant, err := hedged(ctx, func(ctx context.Context) (*clientv3.LeaseGrantResponse, error) { return cli.Grant(ctx, ttl) })
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
	if _, err := hedged(ctx, func(ctx context.Context) (*clientv3.PutResponse, error) {
		return cli.Put(ctx, key, string(value), clientv3.WithLease(grant.ID))
	}); err != nil {
		return err
	}
	e.mu.Lock()
	e.leases[key] = grant.ID
	e.mu.Unlock()
	return nil
}

func (e *etcdRegistration) Deregister(s *registry.Service, _ ...registry.DeregisterOption) error {
	cli, err := e.connect()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	for _, n := range s.Nodes {
		key := etcdKey(s.Name, n.Id)
		if _, err := hedged(ctx, func(ctx context.Context) (*clientv3.DeleteResponse, error) { return cli.Delete(ctx, key) }); err != nil {
			return err
		}
		e.mu.Lock()
		lease, ok := e.leases[key]
		delete(e.leases, key)
		e.mu.Unlock()
		if ok {
			// The key is gone and the lease would expire anyway, but a
			// revoke sent to a paused member would hold the caller (a
			// SIGTERMed instance) until its timeout: hedged like the rest.
			_, _ = hedged(ctx, func(ctx context.Context) (*clientv3.LeaseRevokeResponse, error) { return cli.Revoke(ctx, lease) })
		}
	}
	return nil
}
