package main

import (
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/internal/stack"
)

// server is a registry process started for one measurement.
type server struct {
	addr, version string
	pid           int
	stop          func()
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
		return &server{addr: r.Addr, version: r.Version, pid: pid, stop: r.Stop}, nil
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
		"-server-port", strconv.Itoa(ports[3]),
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
	return &server{addr: addr, version: version, pid: p.Cmd.Process.Pid, stop: stop}, nil
}
