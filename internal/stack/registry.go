package stack

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"go-micro.dev/v4/registry"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/internal/regauth"
)

// Registry is a Consul or etcd server started here. Its API reads it.
type Registry struct {
	*API
	Version string
	DNS     string // Consul's DNS server, 127.0.0.1:port, UDP and TCP; "" for etcd
	dir     string
	args    []string // the server's command line, to start it again
	proc    *Proc
	opts    options
}

// Option changes how StartRegistry starts a registry server.
type Option func(*options)

type options struct {
	secret   string // Consul's management token or etcd root's password; empty: no auth
	accounts []regauth.Account
	tls      *tlsFiles
}

type tlsFiles struct{ ca, cert, key string }

// TLS serves the registry's client API (etcd's client port, Consul's HTTP
// API: HTTPS only) over TLS with cert and key (PEM files), and takes only
// clients with a certificate signed by ca. The Registry's API connects
// with cert and key as its own client certificate, so they must be good
// for client authentication too.
func TLS(ca, cert, key string) Option {
	return func(o *options) { o.tls = &tlsFiles{ca, cert, key} }
}

// Auth locks the registry down as the compose stack does: Consul with ACLs
// on and default_policy deny, secret its management token (a UUID); etcd
// with authentication on, secret the password of its root user. Each
// account is set up with internal/regauth. The Registry's API then reads
// with these root credentials.
func Auth(secret string, accounts ...regauth.Account) Option {
	return func(o *options) { o.secret, o.accounts = secret, accounts }
}

// StartRegistry starts a fresh single-node Consul (dev mode: in memory, its
// own leader; DNS on, gRPC off) or etcd (data in a directory under dir)
// with every port on 127.0.0.1, and waits until it answers. The binary is
// bin/name, or name on PATH if bin is empty.
func StartRegistry(dir, name, bin string, opts ...Option) (*Registry, error) {
	path := filepath.Join(bin, name)
	if bin == "" {
		var err error
		if path, err = exec.LookPath(name); err != nil {
			return nil, fmt.Errorf("%s not on PATH: run make tools and put bin/ on PATH (make test does)", name)
		}
	}
	r := &Registry{dir: dir}
	for _, o := range opts {
		o(&r.opts)
	}
	var addr string
	switch name {
	case "consul":
		ports, err := FreePorts(5) // free for UDP too, which DNS needs
		if err != nil {
			return nil, err
		}
		addr = "127.0.0.1:" + strconv.Itoa(ports[0])
		r.DNS = "127.0.0.1:" + strconv.Itoa(ports[4])
		r.args = []string{path, "agent", "-dev", "-node", "stack",
			"-bind", "127.0.0.1", "-client", "127.0.0.1",
			"-http-port", strconv.Itoa(ports[0]), "-dns-port", strconv.Itoa(ports[4]), "-grpc-port", "-1",
			"-serf-lan-port", strconv.Itoa(ports[1]), "-serf-wan-port", strconv.Itoa(ports[2]),
			"-server-port", strconv.Itoa(ports[3]),
			"-hcl", "disable_update_check = true"} // loopback only
		if r.opts.secret != "" {
			// The agent's own token is the management one too: with none,
			// default deny blocks the agent's updates of its node.
			r.args = append(r.args, "-hcl", fmt.Sprintf(`acl { enabled = true, default_policy = "deny", tokens { initial_management = %q, agent = %q } }`, r.opts.secret, r.opts.secret))
		}
		if t := r.opts.tls; t != nil {
			r.args[slices.Index(r.args, "-http-port")+1] = "-1" // HTTPS only, on the same port
			r.args = append(r.args, "-hcl", fmt.Sprintf(`ports { https = %d }`, ports[0]),
				"-hcl", fmt.Sprintf(`tls { defaults { ca_file = %q, cert_file = %q, key_file = %q, verify_incoming = true } }`, t.ca, t.cert, t.key))
		}
	case "etcd":
		ports, err := FreePorts(2)
		if err != nil {
			return nil, err
		}
		addr = "127.0.0.1:" + strconv.Itoa(ports[0])
		client, peer := "http://"+addr, "http://127.0.0.1:"+strconv.Itoa(ports[1])
		if r.opts.tls != nil {
			client = "https://" + addr
		}
		data, err := os.MkdirTemp(dir, "etcd-data")
		if err != nil {
			return nil, err
		}
		r.args = []string{path, "--name", "default", "--data-dir", data,
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", "default=" + peer}
		if t := r.opts.tls; t != nil {
			r.args = append(r.args, "--cert-file", t.cert, "--key-file", t.key, "--client-cert-auth", "--trusted-ca-file", t.ca)
		}
	default:
		return nil, fmt.Errorf("unknown registry %q", name)
	}
	r.API = &API{Name: name, Addr: addr, secret: r.opts.secret}
	if t := r.opts.tls; t != nil {
		var err error
		if r.API.tls, err = clientTLS(*t); err != nil {
			return nil, err
		}
	}
	return r, r.start()
}

// MustStartRegistry is StartRegistry for a test, with the binary from
// PATH: a missing one fails the test rather than skipping it, so that a
// broken setup never looks like a green run.
func MustStartRegistry(tb testing.TB, name string, opts ...Option) *Registry {
	tb.Helper()
	r, err := StartRegistry(tb.TempDir(), name, "", opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		r.API.Close()
		r.proc.stopForTest(tb)
	})
	return r
}

// start runs the server, waits until it answers and sets up its accounts
// (again after a restart: Consul in dev mode forgets them).
func (r *Registry) start() error {
	var err error
	if r.proc, err = Start(r.dir, r.Name, r.args[0], r.args[1:]...); err != nil {
		return err
	}
	ready := r.etcdReady
	if r.Name == "consul" {
		ready = r.consulReady
	}
	err = poll.Until(30*time.Second, 50*time.Millisecond, func() error {
		if r.proc.Exited() {
			return poll.Final(fmt.Errorf("%s exited at start: %v", r.Name, r.proc.Err()))
		}
		return ready()
	})
	if err != nil {
		r.proc.Stop(stopWithin)
		return fmt.Errorf("%s not ready: %w\n--- %s ---\n%s", r.Name, err, r.proc.Log, r.proc.Tail(logLines))
	}
	if r.opts.secret != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if r.Name == "consul" {
			err = regauth.Consul(ctx, r.Addr, r.opts.secret, r.API.tls, r.opts.accounts)
		} else {
			err = regauth.Etcd(ctx, []string{r.Addr}, r.opts.secret, r.API.tls, r.opts.accounts)
		}
		if err != nil {
			r.proc.Stop(stopWithin)
			return fmt.Errorf("%s accounts: %w", r.Name, err)
		}
	}
	if r.Name == "etcd" {
		// A new client each start: an old one would wait out gRPC's
		// reconnect backoff (up to 120 s) after a restart.
		cli, err := r.API.newEtcd()
		if err != nil {
			r.proc.Stop(stopWithin)
			return err
		}
		r.API.setEtcd(cli)
	}
	return nil
}

func (r *Registry) consulReady() error {
	var leader string
	c := r.consulHTTP()
	if c != registryHTTP {
		defer c.CloseIdleConnections() // its own transport
	}
	if err := GetJSON(c, r.consulURL("/v1/status/leader"), &leader); err != nil {
		return err
	}
	if leader == "" {
		return errors.New("consul has no leader yet")
	}
	var self struct{ Config struct{ Version string } }
	if err := GetJSON(c, r.consulURL("/v1/agent/self"), &self); err != nil {
		return err
	}
	r.Version = self.Config.Version
	return nil
}

func (r *Registry) etcdReady() error {
	c, scheme := registryHTTP, "http://"
	if r.API.tls != nil {
		c, scheme = &http.Client{Timeout: registryHTTP.Timeout, Transport: &http.Transport{TLSClientConfig: r.API.tls}}, "https://"
		defer c.CloseIdleConnections()
	}
	var h struct{ Health string }
	if err := GetJSON(c, scheme+r.Addr+"/health", &h); err != nil {
		return err
	}
	if h.Health != "true" {
		return fmt.Errorf("etcd not healthy yet: health %q", h.Health)
	}
	var v struct{ Etcdserver string }
	if err := GetJSON(c, scheme+r.Addr+"/version", &v); err != nil {
		return err
	}
	r.Version = v.Etcdserver
	return nil
}

// Restart starts the server again after Stop, on the same ports: etcd on the
// same data directory, Consul (dev mode) empty.
func (r *Registry) Restart() error {
	r.Stop()
	return r.start()
}

// Pause stops the server without ending it (SIGSTOP): connections stay open
// and nothing answers. Resume lets it go on; Stop resumes it first.
func (r *Registry) Pause() error  { return r.proc.Pause() }
func (r *Registry) Resume() error { return r.proc.Resume() }

// Kill ends the registry server with SIGKILL (a crash) and waits for it to
// exit; Restart starts it again.
func (r *Registry) Kill() error {
	r.API.Close()
	if err := r.proc.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	_ = r.proc.Signal(syscall.SIGCONT) // a paused process acts on nothing else
	return waitExit(r.proc)
}

// Stop ends the registry server.
func (r *Registry) Stop() {
	r.API.Close()
	r.proc.Stop(stopWithin)
}

// API reads a registry server through its own API, as the services'
// lookups would see it: Consul's HTTP API, etcd's keys.
type API struct {
	Name string // consul or etcd: the services' --registry
	Addr string // host:port: the services' --registry_address

	mu   sync.Mutex // guards etcd: a restart replaces it while others read
	etcd *clientv3.Client

	// secret is what the API reads with: Consul's management token or
	// etcd root's password; empty if the registry has no auth.
	secret string
	tls    *tls.Config // etcd over TLS; nil: plaintext

	// addrs is every member of a Cluster (Consul: the agent first), read
	// in turn until one answers; nil for a single registry (Addr).
	addrs []string
}

// clientTLS trusts t.ca and presents t.cert.
func clientTLS(t tlsFiles) (*tls.Config, error) {
	pem, err := os.ReadFile(t.ca)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate", t.ca)
	}
	cert, err := tls.LoadX509KeyPair(t.cert, t.key)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}}, nil
}

// Instance is a service instance as a registry lists it.
type Instance struct {
	ID      string // <service>-<uuid>
	Address string // host:port of its RPC server
	Node    string // Consul: the node (agent) it is registered with; etcd: ""
}

// registryHTTP bounds each call to a registry server, so that a paused one
// makes a call fail rather than hang.
var registryHTTP = &http.Client{Timeout: 2 * time.Second}

// consulHTTP is the client a reads Consul with: registryHTTP, with the
// token and TLS if any.
func (a *API) consulHTTP() *http.Client {
	if a.secret == "" && a.tls == nil {
		return registryHTTP
	}
	next := http.DefaultTransport
	if a.tls != nil {
		next = &http.Transport{TLSClientConfig: a.tls}
	}
	return &http.Client{Timeout: registryHTTP.Timeout, Transport: &tokenTransport{token: a.secret, next: next}}
}

// consulURL is the URL of path on a's Consul.
func (a *API) consulURL(path string) string { return consulURLAt(a.tls != nil, a.Addr, path) }

// consulURLAt is the URL of path on the Consul agent at addr.
func consulURLAt(https bool, addr, path string) string {
	if https {
		return "https://" + addr + path
	}
	return "http://" + addr + path
}

// consulGet gets path from a's Consul into v: from each address of a
// cluster in turn until one answers.
func (a *API) consulGet(path string, v any) error {
	c := a.consulHTTP()
	if c != registryHTTP {
		defer c.CloseIdleConnections() // its own transport
	}
	var errs []error
	addrs := a.addrs
	if len(addrs) == 0 {
		addrs = []string{a.Addr}
	}
	for _, addr := range addrs {
		err := GetJSON(c, consulURLAt(a.tls != nil, addr, path), v)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// tokenTransport sends a Consul ACL token, if any, with every request.
type tokenTransport struct {
	token string
	next  http.RoundTripper
}

func (t *tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.token != "" {
		req = req.Clone(req.Context())
		req.Header.Set("X-Consul-Token", t.token)
	}
	return t.next.RoundTrip(req)
}

// newEtcd connects to etcd, as root if it has auth.
func (a *API) newEtcd() (*clientv3.Client, error) {
	c := clientv3.Config{Endpoints: a.etcdEndpoints(), DialTimeout: 2 * time.Second, TLS: a.tls}
	if len(a.addrs) > 0 {
		// A member down is expected: its client's warnings would fill the log.
		c.DialKeepAliveTime, c.DialKeepAliveTimeout = keepAlive.DialKeepAliveTime, keepAlive.DialKeepAliveTimeout
		c.Logger = zap.NewNop()
	}
	if a.secret != "" {
		c.Username, c.Password = "root", a.secret
	}
	return clientv3.New(c)
}

// OpenAPI reads the registry server name (consul or etcd) at addr, one
// started elsewhere. Close releases it.
func OpenAPI(name, addr string) (*API, error) {
	return OpenAPIAs(name, addr, "")
}

// OpenAPIAs is OpenAPI for a registry with auth: secret is Consul's
// management token or etcd root's password (see Auth).
func OpenAPIAs(name, addr, secret string) (*API, error) {
	a := &API{Name: name, Addr: addr, secret: secret}
	switch name {
	case "consul":
	case "etcd":
		var err error
		cli, err := a.newEtcd()
		if err != nil {
			return nil, err
		}
		a.setEtcd(cli)
	default:
		return nil, fmt.Errorf("unknown registry %q", name)
	}
	return a, nil
}

// MustOpenAPI is OpenAPI for a test, closed when tb ends.
func MustOpenAPI(tb testing.TB, name, addr string) *API {
	tb.Helper()
	a, err := OpenAPI(name, addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(a.Close)
	return a
}

// Close releases the connection to etcd.
func (a *API) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.etcd != nil {
		a.etcd.Close()
		a.etcd = nil
	}
}

// Etcd is the client of an etcd server, for what Instances does not read;
// nil for Consul.
func (a *API) Etcd() *clientv3.Client {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.etcd
}

func (a *API) setEtcd(c *clientv3.Client) {
	a.mu.Lock()
	a.etcd = c
	a.mu.Unlock()
}

// Instances lists the instances of service that the registry would hand
// out: Consul's passing health entries (an instance with a critical check
// is left out, as the services' own lookups do; read from any server, as
// they read, so a cluster electing a leader still answers), or the keys
// go-micro's etcd registry writes, one per instance under
// /micro/registry/<service>/, each a JSON registry.Service with that one
// node, held by a lease of the register TTL.
func (a *API) Instances(service string) ([]Instance, error) {
	var is []Instance
	switch a.Name {
	case "consul":
		var entries []struct {
			Node    struct{ Node string }
			Service struct {
				ID      string
				Address string
				Port    int
			}
		}
		if err := a.consulGet("/v1/health/service/"+service+"?passing=true&stale", &entries); err != nil {
			return nil, err
		}
		for _, e := range entries {
			is = append(is, Instance{e.Service.ID, net.JoinHostPort(e.Service.Address, strconv.Itoa(e.Service.Port)), e.Node.Node})
		}
	case "etcd":
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		cli := a.Etcd()
		if cli == nil {
			return nil, errors.New("etcd: stopped")
		}
		// Sent again every 500 ms while unanswered, without giving up on
		// the first (a loaded machine is slow): a read the client sent to a
		// paused member of a cluster then also goes to the next member.
		type answer struct {
			rsp *clientv3.GetResponse
			err error
		}
		answers := make(chan answer, 4)
		read := func() {
			rsp, err := cli.Get(ctx, "/micro/registry/"+service+"/", clientv3.WithPrefix())
			answers <- answer{rsp, err}
		}
		go read()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		var a answer
	wait:
		for sent := 1; ; {
			select {
			case a = <-answers:
				break wait
			case <-tick.C:
				if sent < cap(answers) {
					go read()
					sent++
				}
			}
		}
		rsp, err := a.rsp, a.err
		if err != nil {
			return nil, fmt.Errorf("etcd: %w", err)
		}
		for _, kv := range rsp.Kvs {
			var s registry.Service
			if err := json.Unmarshal(kv.Value, &s); err != nil {
				return nil, fmt.Errorf("etcd key %s: %w", kv.Key, err)
			}
			for _, n := range s.Nodes {
				is = append(is, Instance{ID: n.Id, Address: n.Address})
			}
		}
	default:
		return nil, fmt.Errorf("unknown registry %q", a.Name)
	}
	return is, nil
}

// IDs lists the ids of the instances of service, as Instances finds them.
func (a *API) IDs(service string) ([]string, error) {
	is, err := a.Instances(service)
	var ids []string
	for _, i := range is {
		ids = append(ids, i.ID)
	}
	return ids, err
}

// MustInstances is Instances for a test.
func (a *API) MustInstances(tb testing.TB, service string) []Instance {
	tb.Helper()
	is, err := a.Instances(service)
	if err != nil {
		tb.Fatal(err)
	}
	return is
}

// MustIDs is IDs for a test.
func (a *API) MustIDs(tb testing.TB, service string) []string {
	tb.Helper()
	ids, err := a.IDs(service)
	if err != nil {
		tb.Fatal(err)
	}
	return ids
}

// Node is a service instance started here and the id it registered under.
type Node struct {
	*Proc
	ID string
}

// StartNode starts the service binary path as name against r, its RPC
// server on 127.0.0.1:0, with args after those flags, and returns once r
// lists an instance of service that it did not list before. Start one node
// at a time, so that the new instance is the one just started.
func (r *Registry) StartNode(dir, name, service, path string, args ...string) (*Node, error) {
	return startNode(r.API, r.Addr, dir, name, service, path, args...)
}

// startNode starts a node against the registry r reads, at regAddr (its
// --registry_address).
func startNode(r *API, regAddr, dir, name, service, path string, args ...string) (*Node, error) {
	before, err := r.IDs(service)
	if err != nil {
		return nil, err
	}
	args = append([]string{"--registry", r.Name, "--registry_address", regAddr,
		"--server_address", "127.0.0.1:0"}, args...)
	p, err := Start(dir, name, path, args...)
	if err != nil {
		return nil, err
	}
	n := &Node{Proc: p}
	err = poll.Until(20*time.Second, 20*time.Millisecond, func() error {
		if p.Exited() {
			return poll.Final(fmt.Errorf("%s exited at start: %v", name, p.Err()))
		}
		ids, err := r.IDs(service)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if !slices.Contains(before, id) {
				n.ID = id
				return nil
			}
		}
		return fmt.Errorf("%s: not registered as %s", name, service)
	})
	if err != nil {
		p.Stop(stopWithin)
		return nil, fmt.Errorf("%w\n--- %s ---\n%s", err, p.Log, p.Tail(logLines))
	}
	return n, nil
}

// MustStartNode is StartNode for a test.
func (r *Registry) MustStartNode(tb testing.TB, name, service, path string, args ...string) *Node {
	tb.Helper()
	n, err := r.StartNode(tb.TempDir(), name, service, path, args...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { n.stopForTest(tb) })
	return n
}
