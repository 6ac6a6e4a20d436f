package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/internal/stack"
)

// cluster is a registry server and the user instances for one scenario.
type cluster struct {
	dir, bin string
	reg      *stack.Registry
	plain    bool // run bench/plain's user (bin/plain/user), not the starter's
	cacheTTL time.Duration
	users    []*stack.Proc
	ids      []string      // registry node ids of users, same order
	started  []*stack.Proc // every user process started, so that close stops them all
	seq      int
}

func newCluster(dir, bin, reg string, plain bool) (*cluster, error) {
	r, err := stack.StartRegistry(dir, reg, bin)
	if err != nil {
		return nil, err
	}
	return &cluster{dir: dir, bin: bin, reg: r, plain: plain}, nil
}

// serviceArgs are the flags every instance runs with.
func (c *cluster) serviceArgs() []string {
	args := []string{"--registry", c.reg.Name, "--registry_address", c.reg.Addr, "--server_address", "127.0.0.1:0"}
	if c.cacheTTL > 0 && !c.plain {
		args = append(args, "--registry_cache_ttl", c.cacheTTL.String())
	}
	return args
}

// startUser starts an instance of user (or the sick stand-in) and returns
// once the registry lists it, with its node id.
func (c *cluster) startUser(sick bool) (*stack.Proc, string, time.Time, error) {
	before := c.instances()
	c.seq++
	var p *stack.Proc
	var err error
	switch {
	case sick && c.plain:
		p, err = stack.Start(c.dir, fmt.Sprintf("sick-%d", c.seq), filepath.Join(c.bin, "plain", "user"), append(c.serviceArgs(), "--fail")...)
	case sick:
		self, _ := os.Executable()
		p, err = stack.Start(c.dir, fmt.Sprintf("sick-%d", c.seq), self, append([]string{"sick-user"}, c.serviceArgs()...)...)
	case c.plain:
		p, err = stack.Start(c.dir, fmt.Sprintf("user-%d", c.seq), filepath.Join(c.bin, "plain", "user"), c.serviceArgs()...)
	default:
		p, err = stack.Start(c.dir, fmt.Sprintf("user-%d", c.seq), filepath.Join(c.bin, "user"), c.serviceArgs()...)
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
	return p, id, time.Now(), err
}

// instances lists the ids of the user instances the registry hands out
// (none while it does not answer).
func (c *cluster) instances() []string {
	ids, _ := c.reg.IDs("user")
	return ids
}

func (c *cluster) close() {
	for _, u := range c.started {
		u.Stop(0)
	}
	c.reg.Stop()
}

// pollEvery is how often the chaos program checks what it waits for.
const pollEvery = 20 * time.Millisecond

var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
