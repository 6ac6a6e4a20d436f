package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"go-micro.dev/v4/registry"

	"github.com/example/micro-starter/pkg/discovery"
)

// proc is a process started by the chaos program.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

func startProc(dir, name, path string, args ...string) (*proc, error) {
	out, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	defer out.Close()
	p := &proc{name: name, cmd: exec.Command(path, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// stop sends SIGTERM and returns how long the process took to exit; it is
// killed after limit.
func (p *proc) stop(limit time.Duration) (time.Duration, bool) {
	start := time.Now()
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return time.Since(start), true
	case <-time.After(limit):
		p.signal(syscall.SIGKILL)
		<-p.done
		return time.Since(start), false
	}
}

func (p *proc) kill() {
	select {
	case <-p.done:
	default:
		p.signal(syscall.SIGCONT)
		p.signal(syscall.SIGKILL)
		<-p.done
	}
}

// cluster is a registry server and the user instances for one scenario.
type cluster struct {
	dir, bin   string
	registry   string // consul or etcd
	addr       string
	regArgs    []string // the registry server's command line
	regProc    *proc
	resilience string // on or off
	cacheTTL   time.Duration
	users      []*proc
	ids        []string          // registry node ids of users, same order
	started    []*proc           // every user process started, so that close stops them all
	lookup     registry.Registry // the plugin, uncached, to see what the registry lists
	seq        int
}

func newCluster(dir, bin, reg, resilience string) (*cluster, error) {
	c := &cluster{dir: dir, bin: bin, registry: reg, resilience: resilience}
	ports, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	c.addr = "127.0.0.1:" + strconv.Itoa(ports[0])
	switch reg {
	case "consul":
		c.regArgs = []string{filepath.Join(bin, "consul"), "agent", "-dev", "-node", "chaos", "-bind", "127.0.0.1", "-client", "127.0.0.1",
			"-http-port", strconv.Itoa(ports[0]), "-dns-port", "-1", "-grpc-port", "-1",
			"-serf-lan-port", strconv.Itoa(ports[1]), "-serf-wan-port", strconv.Itoa(ports[2]), "-server-port", strconv.Itoa(ports[3])}
	case "etcd":
		peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
		c.regArgs = []string{filepath.Join(bin, "etcd"), "--name", "chaos", "--data-dir", filepath.Join(dir, "etcd-data"),
			"--listen-client-urls", "http://" + c.addr, "--advertise-client-urls", "http://" + c.addr,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "chaos=" + peer}
	default:
		return nil, fmt.Errorf("unknown registry %q", reg)
	}
	return c, c.startRegistry()
}

func (c *cluster) startRegistry() error {
	p, err := startProc(c.dir, c.registry, c.regArgs[0], c.regArgs[1:]...)
	if err != nil {
		return err
	}
	c.regProc = p
	url := "http://" + c.addr + "/v1/status/leader"
	if c.registry == "etcd" {
		url = "http://" + c.addr + "/health"
	}
	// A fresh client each time the registry starts: the etcd plugin's would
	// wait out gRPC's reconnect backoff (up to 120 s) after a restart.
	c.lookup, err = discovery.NewPlugin(discovery.Config{Name: c.registry, Addresses: []string{c.addr}, Timeout: 2 * time.Second})
	if err != nil {
		return err
	}
	return poll(30*time.Second, func() error {
		rsp, err := (&http.Client{Timeout: time.Second}).Get(url)
		if err != nil {
			return err
		}
		rsp.Body.Close()
		if rsp.StatusCode != 200 {
			return errors.New(rsp.Status)
		}
		return nil
	})
}

// serviceArgs are the flags every instance runs with.
func (c *cluster) serviceArgs() []string {
	args := []string{"--registry", c.registry, "--registry_address", c.addr, "--server_address", "127.0.0.1:0", "--resilience", c.resilience}
	if c.cacheTTL > 0 && c.resilience == "on" {
		args = append(args, "--registry_cache_ttl", c.cacheTTL.String())
	}
	return args
}

// startUser starts an instance of user (or the sick stand-in) and returns
// once the registry lists it, with its node id.
func (c *cluster) startUser(sick bool) (*proc, string, time.Time, error) {
	before := c.instances()
	c.seq++
	var p *proc
	var err error
	if sick {
		self, _ := os.Executable()
		p, err = startProc(c.dir, fmt.Sprintf("sick-%d", c.seq), self, append([]string{"sick-user"}, c.serviceArgs()...)...)
	} else {
		p, err = startProc(c.dir, fmt.Sprintf("user-%d", c.seq), filepath.Join(c.bin, "user"), c.serviceArgs()...)
	}
	if err != nil {
		return nil, "", time.Time{}, err
	}
	c.started = append(c.started, p)
	var id string
	err = poll(30*time.Second, func() error {
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

// instances lists the ids of the user instances the registry hands out.
func (c *cluster) instances() []string {
	var ids []string
	_ = discovery.Call(context.Background(), 2*time.Second, func() error {
		svcs, err := c.lookup.GetService("user")
		for _, s := range svcs {
			for _, n := range s.Nodes {
				ids = append(ids, n.Id)
			}
		}
		return err
	})
	return ids
}

func (c *cluster) close() {
	for _, u := range c.started {
		u.kill()
	}
	c.regProc.kill()
}

func poll(within time.Duration, f func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePorts(n int) ([]int, error) {
	var ports []int
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		u, err := net.ListenPacket("udp", l.Addr().String())
		if err != nil {
			continue
		}
		u.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
