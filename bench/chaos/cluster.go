package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/internal/stack"
)

// cluster is a registry server (or a registry cluster) and the user
// instances for one scenario.
type cluster struct {
	dir, bin string
	reg      *stack.Registry // one server; nil when rc is set
	rc       *stack.Cluster  // three members (T8, T9); nil when reg is set
	plain    bool            // run bench/plain's user (bin/plain/user), not the starter's
	cacheTTL time.Duration
	users    []*stack.Proc
	ids      []string          // registry node ids of users, same order
	health   map[string]string // node id -> host:port of its GET /health (the shipped user's)
	started  []*stack.Proc     // every user process started, so that close stops them all
	seq      int

	killed    *stack.Member // the member T8 killed or T9 paused
	disrupted time.Time     // when T8 or T9 began its disruption
}

func newCluster(dir, bin, reg string, plain bool) (*cluster, error) {
	r, err := stack.StartRegistry(dir, reg, bin)
	if err != nil {
		return nil, err
	}
	return &cluster{dir: dir, bin: bin, reg: r, plain: plain}, nil
}

// newRegistryCluster is newCluster on a registry cluster: three etcd
// members, or three Consul servers and a client agent.
func newRegistryCluster(dir, bin, reg string) (*cluster, error) {
	rc, err := stack.StartCluster(dir, reg, bin)
	if err != nil {
		return nil, err
	}
	return &cluster{dir: dir, bin: bin, rc: rc}, nil
}

// api reads the registry, one server or a cluster.
func (c *cluster) api() *stack.API {
	if c.rc != nil {
		return c.rc.API
	}
	return c.reg.API
}

// addrs is the --registry_address of every process: the one server, or
// every member of the cluster (Consul: its client agent first).
func (c *cluster) addrs() []string {
	if c.rc != nil {
		return c.rc.Addrs()
	}
	return []string{c.reg.Addr}
}

// serviceArgs are the flags every instance runs with.
func (c *cluster) serviceArgs() []string {
	args := []string{"--registry", c.api().Name, "--registry_address", strings.Join(c.addrs(), ","), "--server_address", "127.0.0.1:0"}
	if c.cacheTTL > 0 && !c.plain {
		args = append(args, "--registry_cache_ttl", c.cacheTTL.String())
	}
	return args
}

// startUser starts an instance of user (or the sick stand-in) and returns
// once the registry lists it, with its node id.
func (c *cluster) startUser(sick bool) (*stack.Proc, string, time.Time, error) {
	// The instances started before, listed or not (a registry that does
	// not answer lists none).
	before := append(c.instances(), c.ids...)
	c.seq++
	var p *stack.Proc
	var err error
	var health string
	switch {
	case sick && c.plain:
		p, err = stack.Start(c.dir, fmt.Sprintf("sick-%d", c.seq), filepath.Join(c.bin, "plain", "user"), append(c.serviceArgs(), "--fail")...)
	case sick:
		self, _ := os.Executable()
		p, err = stack.Start(c.dir, fmt.Sprintf("sick-%d", c.seq), self, append([]string{"sick-user"}, c.serviceArgs()...)...)
	case c.plain:
		p, err = stack.Start(c.dir, fmt.Sprintf("user-%d", c.seq), filepath.Join(c.bin, "plain", "user"), c.serviceArgs()...)
	default:
		ports, perr := stack.FreePorts(1)
		if perr != nil {
			return nil, "", time.Time{}, perr
		}
		health = fmt.Sprintf("127.0.0.1:%d", ports[0])
		p, err = stack.Start(c.dir, fmt.Sprintf("user-%d", c.seq), filepath.Join(c.bin, "user"), append(c.serviceArgs(), "--health_address", health)...)
	}
	if err != nil {
		return nil, "", time.Time{}, err
	}
	c.started = append(c.started, p)
	var id string
	err = poll.Until(30*time.Second, pollEvery, func() error {
		for _, i := range c.instances() {
			if !slices.Contains(before, i) {
				id = i
				return nil
			}
		}
		return errors.New("not registered")
	})
	if err == nil && health != "" {
		if c.health == nil {
			c.health = map[string]string{}
		}
		c.health[id] = health
	}
	return p, id, time.Now(), err
}

// instances lists the ids of the user instances the registry hands out
// (none while it does not answer).
func (c *cluster) instances() []string {
	ids, _ := c.api().IDs("user")
	return ids
}

func (c *cluster) close() {
	for _, u := range c.started {
		u.Stop(0)
	}
	if c.rc != nil {
		c.rc.Close()
	} else {
		c.reg.Stop()
	}
}

// pollEvery is how often the chaos program checks what it waits for.
const pollEvery = 20 * time.Millisecond

var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
