package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/example/micro-starter/internal/poll"
)

// Cluster is a registry run as the starter expects it in production, all
// on 127.0.0.1: three etcd members, or three Consul servers and one Consul
// client agent that the services talk to. Its API reads through every
// member (etcd) or the agent and then the servers (Consul), so that a
// member down does not fail a read.
type Cluster struct {
	*API
	Members []*Member // etcd's members, Consul's servers
	Agent   *Member   // Consul's client agent; nil for etcd
	dir     string
}

// Member is one registry process of a Cluster.
type Member struct {
	Name string // etcd member name, Consul node name
	Addr string // its client API, host:port: etcd's client URL, Consul's HTTP API
	// raft is what the cluster's leader is named by: etcd's member id (hex)
	// once known, Consul's server RPC address.
	raft string
	args []string
	dir  string

	mu     sync.Mutex
	proc   *Proc
	paused bool
}

// StartCluster starts a fresh three-member etcd cluster, or three Consul
// servers (raft_multiplier 1, as for production) and a client agent joined
// to them, each with its data in a directory under dir and every port on
// 127.0.0.1, and returns once every member answers and a leader is elected.
// The binaries are bin/name, or name on PATH if bin is empty.
//
// A member that exits while the cluster forms (a port picked free and
// taken meanwhile by another test's process: seen in CI) fails the try at
// once; the cluster is started again on new ports, up to three times.
func StartCluster(dir, name, bin string) (*Cluster, error) {
	path := filepath.Join(bin, name)
	if bin == "" {
		var err error
		if path, err = exec.LookPath(name); err != nil {
			return nil, fmt.Errorf("%s not on PATH: run make tools and put bin/ on PATH (make test does)", name)
		}
	}
	for try := 1; ; try++ {
		c, err := startCluster(dir, name, path)
		if err == nil || try == 3 || !errors.Is(err, errMemberExited) {
			return c, err
		}
	}
}

// errMemberExited: a member's process ended while its cluster formed.
var errMemberExited = errors.New("member exited")

func startCluster(dir, name, path string) (*Cluster, error) {
	c := &Cluster{dir: dir}
	var err error
	switch name {
	case "etcd":
		err = c.setUpEtcd(path)
	case "consul":
		err = c.setUpConsul(path)
	default:
		return nil, fmt.Errorf("unknown registry %q", name)
	}
	if err != nil {
		return nil, err
	}
	c.API = &API{Name: name, Addr: c.Addrs()[0], addrs: c.Addrs()}
	if name == "etcd" {
		cli, err := c.API.newEtcd()
		if err != nil {
			return nil, err
		}
		c.API.setEtcd(cli)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(c.all()))
	for i, m := range c.all() {
		wg.Go(func() { errs[i] = m.start() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.Close()
		return nil, err
	}
	formed := func() error {
		for _, m := range c.all() {
			if m.exited() {
				return poll.Final(fmt.Errorf("%w: %s: %v", errMemberExited, m.Name, m.process().Err()))
			}
		}
		return c.ready()
	}
	if err := poll.Until(60*time.Second, 50*time.Millisecond, formed); err != nil {
		c.Close()
		return nil, fmt.Errorf("%s cluster not ready: %w\n%s", name, err, c.tails())
	}
	return c, nil
}

// MustStartCluster is StartCluster for a test, with the binaries from PATH;
// every process is stopped when tb ends.
func MustStartCluster(tb testing.TB, name string) *Cluster {
	tb.Helper()
	c, err := StartCluster(tb.TempDir(), name, "")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Log(c.tails())
		}
		c.Close()
	})
	return c
}

func (c *Cluster) setUpEtcd(path string) error {
	ports, err := FreePorts(6)
	if err != nil {
		return err
	}
	var initial []string
	for i := range 3 {
		m := &Member{Name: "etcd-" + strconv.Itoa(i+1), Addr: "127.0.0.1:" + strconv.Itoa(ports[2*i])}
		initial = append(initial, m.Name+"=http://127.0.0.1:"+strconv.Itoa(ports[2*i+1]))
		c.Members = append(c.Members, m)
	}
	for i, m := range c.Members {
		if m.dir, err = os.MkdirTemp(c.dir, m.Name); err != nil {
			return err
		}
		client, peer := "http://"+m.Addr, "http://127.0.0.1:"+strconv.Itoa(ports[2*i+1])
		m.args = []string{path, "--name", m.Name, "--data-dir", filepath.Join(m.dir, "data"),
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new", "--initial-cluster-token", "micro-stack"}
	}
	return nil
}

func (c *Cluster) setUpConsul(path string) error {
	// Per agent: HTTP, Serf LAN, Serf WAN, server RPC.
	ports, err := FreePorts(16)
	if err != nil {
		return err
	}
	var joins []string
	for i := range 3 {
		joins = append(joins, "-retry-join", "127.0.0.1:"+strconv.Itoa(ports[4*i+1]))
	}
	// The members start together: the first tries find nobody, and the
	// default retry interval is 30 s.
	joins = append(joins, "-retry-interval", "200ms")
	for i := range 4 {
		p := ports[4*i : 4*i+4]
		m := &Member{Name: "consul-server-" + strconv.Itoa(i+1), Addr: "127.0.0.1:" + strconv.Itoa(p[0]),
			raft: "127.0.0.1:" + strconv.Itoa(p[3])}
		if i == 3 {
			m.Name, m.raft = "consul-agent", ""
		}
		if m.dir, err = os.MkdirTemp(c.dir, m.Name); err != nil {
			return err
		}
		m.args = []string{path, "agent", "-node", m.Name, "-data-dir", filepath.Join(m.dir, "data"),
			"-bind", "127.0.0.1", "-client", "127.0.0.1",
			"-http-port", strconv.Itoa(p[0]), "-dns-port", "-1", "-grpc-port", "-1",
			"-serf-lan-port", strconv.Itoa(p[1]), "-serf-wan-port", strconv.Itoa(p[2]),
			"-server-port", strconv.Itoa(p[3]),
			// Loopback only: no call to HashiCorp's update service.
			"-hcl", "disable_update_check = true"}
		m.args = append(m.args, joins...)
		if i < 3 {
			// raft_multiplier 1: the timing HashiCorp recommends for
			// production; the default (5) is for small development machines
			// and makes an election take about five times longer.
			m.args = append(m.args, "-server", "-bootstrap-expect", "3", "-hcl", "performance { raft_multiplier = 1 }")
			c.Members = append(c.Members, m)
		} else {
			// An RPC to a server that stopped answering (paused, partitioned)
			// would hold the agent's catalogue sync for the default 60 s.
			m.args = append(m.args, "-hcl", `limits { rpc_client_timeout = "2s" }`)
			c.Agent = m
		}
	}
	return nil
}

// all is every process of the cluster: the members, then the agent.
func (c *Cluster) all() []*Member {
	if c.Agent == nil {
		return c.Members
	}
	return append(slices.Clip(c.Members), c.Agent)
}

// Addrs is what the services are given as --registry_address: every etcd
// member; Consul's client agent first, then the servers (agents too), to
// fail over to if the client agent does not answer.
func (c *Cluster) Addrs() []string {
	var addrs []string
	for _, m := range c.all() {
		addrs = append(addrs, m.Addr)
	}
	if c.Agent != nil {
		addrs = append([]string{c.Agent.Addr}, addrs[:len(addrs)-1]...)
	}
	return addrs
}

// ready checks that every running member answers and agrees on a leader.
func (c *Cluster) ready() error {
	for _, m := range c.all() {
		if !m.running() {
			continue
		}
		if err := c.memberReady(m); err != nil {
			return err
		}
	}
	if c.Name == "consul" {
		// The agent has joined and its node is in the catalogue: services
		// registered through it can be synced to the servers.
		var nodes []struct{ Node string }
		if err := GetJSON(registryHTTP, "http://"+c.Agent.Addr+"/v1/catalog/nodes", &nodes); err != nil {
			return err
		}
		if !slices.ContainsFunc(nodes, func(n struct{ Node string }) bool { return n.Node == c.Agent.Name }) {
			return fmt.Errorf("%s not in the catalogue yet", c.Agent.Name)
		}
	}
	_, err := c.Leader()
	return err
}

// memberReady checks that m answers and knows a leader.
func (c *Cluster) memberReady(m *Member) error {
	if m.exited() {
		return poll.Final(fmt.Errorf("%s exited: %v", m.Name, m.proc.Err()))
	}
	switch c.Name {
	case "consul":
		var leader string
		if err := GetJSON(registryHTTP, "http://"+m.Addr+"/v1/status/leader", &leader); err != nil {
			return err
		}
		if leader == "" {
			return fmt.Errorf("%s knows no leader", m.Name)
		}
	case "etcd":
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := c.Etcd().Status(ctx, m.Addr)
		if err != nil {
			return fmt.Errorf("%s: %w", m.Name, err)
		}
		if st.Leader == 0 {
			return fmt.Errorf("%s knows no leader", m.Name)
		}
		m.mu.Lock()
		m.raft = strconv.FormatUint(st.Header.MemberId, 16)
		m.mu.Unlock()
	}
	return nil
}

// Leader is the member that leads the cluster now, as the running members
// see it: an error while they have none or do not agree.
func (c *Cluster) Leader() (*Member, error) {
	var leader string
	for _, m := range c.Members {
		if !m.running() {
			continue
		}
		var l string
		switch c.Name {
		case "consul":
			if err := GetJSON(registryHTTP, "http://"+m.Addr+"/v1/status/leader", &l); err != nil {
				return nil, fmt.Errorf("%s: %w", m.Name, err)
			}
		case "etcd":
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			st, err := c.Etcd().Status(ctx, m.Addr)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", m.Name, err)
			}
			if st.Leader != 0 {
				l = strconv.FormatUint(st.Leader, 16)
			}
		}
		if l == "" {
			return nil, fmt.Errorf("%s knows no leader", m.Name)
		}
		if leader != "" && l != leader {
			return nil, fmt.Errorf("members disagree on the leader: %s and %s", leader, l)
		}
		leader = l
	}
	for _, m := range c.Members {
		m.mu.Lock()
		raft := m.raft
		m.mu.Unlock()
		if raft == leader && m.running() {
			return m, nil
		}
	}
	return nil, fmt.Errorf("leader %q is none of the running members", leader)
}

// WaitLeader waits up to within for a leader among the running members.
func (c *Cluster) WaitLeader(within time.Duration) (*Member, error) {
	var leader *Member
	err := poll.Until(within, 20*time.Millisecond, func() error {
		var err error
		leader, err = c.Leader()
		return err
	})
	return leader, err
}

// Follower is a running member that does not lead the cluster, and is none
// of except.
func (c *Cluster) Follower(except ...*Member) (*Member, error) {
	leader, err := c.Leader()
	if err != nil {
		return nil, err
	}
	for _, m := range c.Members {
		if m != leader && m.running() && !slices.Contains(except, m) {
			return m, nil
		}
	}
	return nil, errors.New("no running follower")
}

// Kill ends m with SIGKILL (a crash: no leave, no leadership transfer) and
// waits for it to exit.
func (c *Cluster) Kill(m *Member) error {
	p := m.process()
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	_ = p.Signal(syscall.SIGCONT) // a paused process acts on nothing else
	return waitExit(p)
}

// Stop ends m with SIGTERM (a clean stop; Consul's servers do not leave the
// cluster on it, its client agent does).
func (c *Cluster) Stop(m *Member) {
	m.process().Stop(stopWithin)
}

// Restart starts m again, stopped or killed, on its ports and data
// directory, and waits until it answers and knows the leader.
func (c *Cluster) Restart(m *Member) error {
	if p := m.process(); p != nil && !p.Exited() {
		c.Stop(m)
	}
	m.setPaused(false)
	if err := m.start(); err != nil {
		return err
	}
	err := poll.Until(60*time.Second, 50*time.Millisecond, func() error { return c.memberReady(m) })
	if err != nil {
		return fmt.Errorf("%s not back: %w\n--- %s ---\n%s", m.Name, err, m.proc.Log, m.proc.Tail(logLines))
	}
	return nil
}

// Pause stops m without ending it (SIGSTOP): its connections stay open and
// it answers nothing, to the other members either: a partitioned member.
// Leader and Follower leave it out until Resume.
func (c *Cluster) Pause(m *Member) error {
	m.setPaused(true)
	return m.process().Pause()
}

// Resume lets a paused member go on.
func (c *Cluster) Resume(m *Member) error {
	err := m.process().Resume()
	m.setPaused(false)
	return err
}

func (m *Member) setPaused(p bool) {
	m.mu.Lock()
	m.paused = p
	m.mu.Unlock()
}

// Close ends every process of the cluster with SIGKILL: its data is thrown
// away, and a clean stop (leadership transfer, the agent leaving) takes
// seconds per member.
func (c *Cluster) Close() {
	if c.API != nil {
		c.API.Close()
	}
	for _, m := range c.all() {
		if p := m.process(); p != nil && !p.Exited() {
			_ = c.Kill(m)
		}
	}
}

// tails is the end of each member's output, for a failed start or test.
func (c *Cluster) tails() string {
	var b strings.Builder
	for _, m := range c.all() {
		if p := m.process(); p != nil {
			fmt.Fprintf(&b, "--- %s ---\n%s\n", m.Name, p.Tail(logLines))
		}
	}
	return b.String()
}

// StartNode starts the service binary path as name against every address of
// the cluster (see Addrs), as Registry.StartNode does against one registry.
func (c *Cluster) StartNode(dir, name, service, path string, args ...string) (*Node, error) {
	return startNode(c.API, strings.Join(c.Addrs(), ","), dir, name, service, path, args...)
}

// MustStartNode is StartNode for a test.
func (c *Cluster) MustStartNode(tb testing.TB, name, service, path string, args ...string) *Node {
	tb.Helper()
	n, err := c.StartNode(tb.TempDir(), name, service, path, args...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { n.stopForTest(tb) })
	return n
}

func (m *Member) start() error {
	p, err := Start(m.dir, m.Name, m.args[0], m.args[1:]...)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.proc = p
	m.mu.Unlock()
	return nil
}

func (m *Member) process() *Proc {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proc
}

// running reports whether m's process has started, not exited and is not
// paused: whether it can answer.
func (m *Member) running() bool {
	m.mu.Lock()
	p, paused := m.proc, m.paused
	m.mu.Unlock()
	return p != nil && !p.Exited() && !paused
}

func (m *Member) exited() bool {
	p := m.process()
	return p != nil && p.Exited()
}

// Pid is the process id of m, for a report.
func (m *Member) Pid() int { return m.process().Cmd.Process.Pid }

func waitExit(p *Proc) error {
	select {
	case <-p.done:
		return nil
	case <-time.After(stopWithin):
		return fmt.Errorf("%s still running %v after SIGKILL", p.Name, stopWithin)
	}
}

// etcdEndpoints is what an API for etcd connects to: every member of a
// cluster, or its one address.
func (a *API) etcdEndpoints() []string {
	if len(a.addrs) > 0 {
		return a.addrs
	}
	return []string{a.Addr}
}

// keepAlive has the etcd client of a cluster's API probe each connection,
// so that a paused member's is found dead within seconds and its calls go
// to the others: every 5 s, the most often etcd accepts pings
// (--grpc-keepalive-min-time).
var keepAlive = clientv3.Config{DialKeepAliveTime: 5 * time.Second, DialKeepAliveTimeout: time.Second}
