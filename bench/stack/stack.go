// Package stack starts the processes that the benchmarks and the chaos
// suite drive: a Consul or etcd server and service binaries, all on
// 127.0.0.1. It stops, pauses and restarts them, and reads what they
// registered and how much memory they hold.
package stack

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go-micro.dev/v4/registry"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Proc is a process started here; only Stop ends it.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	done chan struct{}
}

// Start runs path with its output in dir/name.log.
func Start(dir, name, path string, args ...string) (*Proc, error) {
	out, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	defer out.Close()
	p := &Proc{Name: name, Cmd: exec.Command(path, args...), done: make(chan struct{})}
	p.Cmd.Stdout, p.Cmd.Stderr = out, out
	if err := p.Cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { _ = p.Cmd.Wait(); close(p.done) }()
	return p, nil
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process: SIGSTOP pauses it, SIGCONT resumes it,
// SIGKILL is a crash.
func (p *Proc) Signal(sig syscall.Signal) { _ = p.Cmd.Process.Signal(sig) }

// Stop sends SIGTERM, then SIGKILL after limit, and waits for the exit. It
// returns how long the process took and whether it exited by itself.
func (p *Proc) Stop(limit time.Duration) (took time.Duration, clean bool) {
	if p == nil || p.Exited() {
		return 0, true
	}
	start := time.Now()
	p.Signal(syscall.SIGCONT) // a paused process acts on nothing else
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return time.Since(start), true
	case <-time.After(limit):
		p.Signal(syscall.SIGKILL)
		<-p.done
		return time.Since(start), false
	}
}

// RSS is the resident set size of the process in bytes (VmRSS).
func (p *Proc) RSS() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for %s", p.Name)
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1 (free for UDP too).
func FreePorts(n int) ([]int, error) {
	var ports []int
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		held = append(held, l)
		u, err := net.ListenPacket("udp", l.Addr().String())
		if err != nil {
			continue
		}
		u.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Registry is a running Consul or etcd server.
type Registry struct {
	Name    string // consul or etcd: the services' --registry
	Addr    string // host:port: the services' --registry_address
	Version string
	dir     string
	args    []string // the server's command line, to start it again
	proc    *Proc
	etcd    *clientv3.Client
}

var httpClient = &http.Client{Timeout: 2 * time.Second}

// StartRegistry starts a fresh single-node Consul (dev mode) or etcd with
// every port on 127.0.0.1, and waits until it answers. The binary is
// bin/name, or name on PATH if bin is empty.
func StartRegistry(dir, name, bin string) (*Registry, error) {
	path := filepath.Join(bin, name)
	if bin == "" {
		var err error
		if path, err = exec.LookPath(name); err != nil {
			return nil, fmt.Errorf("%s not on PATH: run make tools and put bin/ on PATH", name)
		}
	}
	r := &Registry{Name: name, dir: dir}
	switch name {
	case "consul":
		ports, err := FreePorts(4)
		if err != nil {
			return nil, err
		}
		r.Addr = "127.0.0.1:" + strconv.Itoa(ports[0])
		r.args = []string{path, "agent", "-dev", "-node", "bench",
			"-bind", "127.0.0.1", "-client", "127.0.0.1",
			"-http-port", strconv.Itoa(ports[0]), "-dns-port", "-1", "-grpc-port", "-1",
			"-serf-lan-port", strconv.Itoa(ports[1]), "-serf-wan-port", strconv.Itoa(ports[2]),
			"-server-port", strconv.Itoa(ports[3])}
	case "etcd":
		ports, err := FreePorts(2)
		if err != nil {
			return nil, err
		}
		r.Addr = "127.0.0.1:" + strconv.Itoa(ports[0])
		client, peer := "http://"+r.Addr, "http://127.0.0.1:"+strconv.Itoa(ports[1])
		data, err := os.MkdirTemp(dir, "etcd-data")
		if err != nil {
			return nil, err
		}
		r.args = []string{path, "--name", "default", "--data-dir", data,
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", "default=" + peer}
	default:
		return nil, fmt.Errorf("unknown registry %q", name)
	}
	return r, r.start()
}

// start runs the server and waits until it answers.
func (r *Registry) start() error {
	var err error
	if r.proc, err = Start(r.dir, r.Name, r.args[0], r.args[1:]...); err != nil {
		return err
	}
	switch r.Name {
	case "consul":
		err = r.wait(func() error {
			var leader string
			if err := getJSON("http://"+r.Addr+"/v1/status/leader", &leader); err != nil {
				return err
			}
			if leader == "" {
				return fmt.Errorf("no leader yet")
			}
			return nil
		})
		if err != nil {
			return err
		}
		var self struct{ Config struct{ Version string } }
		_ = getJSON("http://"+r.Addr+"/v1/agent/self", &self)
		r.Version = self.Config.Version
	case "etcd":
		err = r.wait(func() error {
			var h struct{ Health string }
			if err := getJSON("http://"+r.Addr+"/health", &h); err != nil {
				return err
			}
			if h.Health != "true" {
				return fmt.Errorf("not healthy yet")
			}
			return nil
		})
		if err != nil {
			return err
		}
		var v struct{ Etcdserver string }
		_ = getJSON("http://"+r.Addr+"/version", &v)
		r.Version = v.Etcdserver
		// A new client each start: an old one would wait out gRPC's
		// reconnect backoff (up to 120 s) after a restart.
		r.etcd, err = clientv3.New(clientv3.Config{Endpoints: []string{r.Addr}, DialTimeout: 2 * time.Second})
		if err != nil {
			r.Stop()
			return err
		}
	}
	return nil
}

// Restart starts the server again after Stop, on the same ports: etcd on the
// same data directory, Consul (dev mode) empty.
func (r *Registry) Restart() error {
	r.Stop()
	return r.start()
}

// Pause stops the server without ending it (SIGSTOP): connections stay open
// and nothing answers. Resume lets it go on.
func (r *Registry) Pause()  { r.proc.Signal(syscall.SIGSTOP) }
func (r *Registry) Resume() { r.proc.Signal(syscall.SIGCONT) }

func (r *Registry) wait(ready func() error) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if r.proc.Exited() {
			return fmt.Errorf("%s exited at start (see its log)", r.Name)
		}
		err := ready()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			r.Stop()
			return fmt.Errorf("%s not ready after 30 s: %v", r.Name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends the registry server.
func (r *Registry) Stop() {
	if r.etcd != nil {
		r.etcd.Close()
		r.etcd = nil
	}
	r.proc.Stop(10 * time.Second)
}

// Instances lists the ids of the instances of service the registry hands
// out, read from its own API: Consul's passing health entries, etcd's keys
// under /micro/registry/<service>/.
func (r *Registry) Instances(service string) ([]string, error) {
	var ids []string
	switch r.Name {
	case "consul":
		var entries []struct{ Service struct{ ID string } }
		if err := getJSON("http://"+r.Addr+"/v1/health/service/"+service+"?passing=true", &entries); err != nil {
			return nil, err
		}
		for _, e := range entries {
			ids = append(ids, e.Service.ID)
		}
	default:
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		rsp, err := r.etcd.Get(ctx, "/micro/registry/"+service+"/", clientv3.WithPrefix())
		if err != nil {
			return nil, err
		}
		for _, kv := range rsp.Kvs {
			var s registry.Service
			if err := json.Unmarshal(kv.Value, &s); err != nil {
				return nil, err
			}
			for _, n := range s.Nodes {
				ids = append(ids, n.Id)
			}
		}
	}
	return ids, nil
}

func getJSON(url string, v any) error {
	rsp, err := httpClient.Get(url)
	if err != nil {
		return err
	}
	defer rsp.Body.Close()
	if rsp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, rsp.Status)
	}
	return json.NewDecoder(rsp.Body).Decode(v)
}
