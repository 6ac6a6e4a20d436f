package main

import (
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/internal/stack"
)

// server is the registry started for one measurement: one process, or a
// cluster of them.
type server struct {
	version string
	pids    []int    // every process of it, whose CPU is the registry's
	addrs   []string // what an instance registers through
	// callerAddrs is what caller w looks up and watches through.
	callerAddrs func(w int) []string
	stop        func()
}

func single(addr, version string, pid int, stop func()) *server {
	return &server{version: version, pids: []int{pid}, addrs: []string{addr},
		callerAddrs: func(int) []string { return []string{addr} }, stop: stop}
}

// startCluster starts three etcd members, or three Consul servers and a
// client agent (stack.StartCluster). Every address of the cluster is
// given to each instance and caller, as to the services (the Consul agent
// first, the servers to fail over to); except that Consul's callers look
// up and watch through the servers, a different one first for each
// caller: through the one agent, the 50 instances and 20 callers would
// pass its 200 connections per client address (they all come from
// 127.0.0.1), and an agent forwards those reads to the servers anyway.
func startCluster(dir, name, bin string) (*server, error) {
	c, err := stack.StartCluster(dir, name, bin)
	if err != nil {
		return nil, err
	}
	s := &server{addrs: c.Addrs(), callerAddrs: func(int) []string { return c.Addrs() }, stop: c.Close}
	for _, m := range c.Members {
		s.pids = append(s.pids, m.Pid())
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	if name == "consul" {
		s.pids = append(s.pids, c.Agent.Pid())
		var servers []string
		for _, m := range c.Members {
			servers = append(servers, m.Addr)
		}
		s.callerAddrs = func(w int) []string {
			k := w % len(servers)
			return append(slices.Clone(servers[k:]), servers[:k]...)
		}
		var self struct{ Config struct{ Version string } }
		err = stack.GetJSON(hc, "http://"+c.Agent.Addr+"/v1/agent/self", &self)
		s.version = self.Config.Version
	} else {
		var v struct{ Etcdserver string }
		err = stack.GetJSON(hc, "http://"+c.Members[0].Addr+"/version", &v)
		s.version = v.Etcdserver
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return s, nil
}

// startRegistry starts etcd with stack.StartRegistry, and Consul with the
// same command line plus limits { http_max_conns_per_client = maxConns }
// when maxConns > 0. Every simulated instance and caller here reaches
// Consul from 127.0.0.1, so they share the 200 concurrent connections
// Consul 1.13 allows one client address; in a deployment each host or pod
// has its own (docs/scaling.md). maxConns 0 keeps Consul's default.
func startRegistry(dir, name, bin string, maxConns int) (*server, error) {
	if name == "etcd" || maxConns == 0 {
		r, err := stack.StartRegistry(dir, name, bin)
		if err != nil {
			return nil, err
		}
		pid, err := childNamed(name)
		if err != nil {
			r.Stop()
			return nil, err
		}
		return single(r.Addr, r.Version, pid, r.Stop), nil
	}
	path := filepath.Join(bin, "consul")
	if bin == "" {
		var err error
		if path, err = exec.LookPath("consul"); err != nil {
			return nil, errors.New("consul not on PATH: run make tools and put bin/ on PATH")
		}
	}
	ports, err := stack.FreePorts(5)
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(ports[0])
	// stack.StartRegistry's dev agent, and the limit.
	p, err := stack.Start(dir, "consul", path, "agent", "-dev", "-node", "scale",
		"-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-http-port", strconv.Itoa(ports[0]), "-dns-port", strconv.Itoa(ports[4]), "-grpc-port", "-1",
		"-serf-lan-port", strconv.Itoa(ports[1]), "-serf-wan-port", strconv.Itoa(ports[2]),
		"-server-port", strconv.Itoa(ports[3]), "-hcl", "disable_update_check = true",
		"-hcl", fmt.Sprintf("limits { http_max_conns_per_client = %d }", maxConns))
	if err != nil {
		return nil, err
	}
	stop := func() { p.Stop(10 * time.Second) }
	hc := &http.Client{Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	var version string
	err = poll.Until(30*time.Second, 50*time.Millisecond, func() error {
		if p.Exited() {
			return poll.Final(fmt.Errorf("consul exited at start: %v\n%s", p.Err(), p.Tail(20)))
		}
		var leader string
		if err := stack.GetJSON(hc, "http://"+addr+"/v1/status/leader", &leader); err != nil {
			return err
		}
		if leader == "" {
			return errors.New("consul has no leader yet")
		}
		var self struct{ Config struct{ Version string } }
		if err := stack.GetJSON(hc, "http://"+addr+"/v1/agent/self", &self); err != nil {
			return err
		}
		version = self.Config.Version
		return nil
	})
	if err != nil {
		stop()
		return nil, err
	}
	return single(addr, version, p.Cmd.Process.Pid, stop), nil
}
