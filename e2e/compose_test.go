//go:build e2e

package e2e

import (
	"bytes"
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
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/internal/stack"
)

// repoRoot holds docker-compose.yml and the Makefile; certs/ in it, the
// certificates and secrets the stack mounts (make certs).
const repoRoot = ".."

// requireDocker skips the test when no Docker engine answers.
func requireDocker(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "info").CombinedOutput(); err != nil {
		t.Skipf("no Docker engine answers: docker info: %v: %s", err, lastLine(out))
	}
}

// composeStack is the compose stack of one test, in a compose project of
// its own: every container and network it makes carries the project's name.
type composeStack struct {
	project  string
	registry string   // consul or etcd: the one the services use
	env      []string // docker-compose's environment: REGISTRY, ports, images
	gateway  string   // base URL of the gateway's API (HTTPS)
	http     *http.Client
	consul   string // host:port of Consul's published HTTP API
	dns      string // host:port of Consul's published DNS server, UDP and TCP
	// Base URLs of Prometheus's API, Jaeger's query API and the gateway's
	// metrics port (its status page), published.
	prometheus, jaeger, status string
}

// startStack starts docker-compose.yml with registry, on free loopback
// ports, and returns once every container is healthy. The stack is removed
// when the test ends, after its logs are printed if the test failed.
func startStack(t *testing.T, registry string) *composeStack {
	t.Helper()
	return startProfile(t, registry, "")
}

// haMembers are the containers docker-compose.ha.yml adds (PROFILE=ha):
// Consul's servers (consul is then the client agent) and etcd's other
// members.
var haMembers = []string{"consul-1", "consul-2", "consul-3", "etcd-2", "etcd-3"}

// startProfile is startStack with a profile: "" or "ha", which adds
// docker-compose.ha.yml as make up PROFILE=ha does.
func startProfile(t *testing.T, registry, profile string) *composeStack {
	t.Helper()
	ports := stack.MustFreePorts(t, 6) // free for UDP too
	project := "microstarter-e2e-" + registry
	if profile != "" {
		project = "microstarter-e2e-" + profile + "-" + registry
	}
	s := &composeStack{
		project:    project,
		registry:   registry,
		gateway:    fmt.Sprintf("https://127.0.0.1:%d", ports[0]),
		http:       httpsClient(t),
		consul:     fmt.Sprintf("127.0.0.1:%d", ports[1]),
		dns:        fmt.Sprintf("127.0.0.1:%d", ports[2]),
		prometheus: fmt.Sprintf("http://127.0.0.1:%d", ports[3]),
		jaeger:     fmt.Sprintf("http://127.0.0.1:%d", ports[4]),
		status:     fmt.Sprintf("http://127.0.0.1:%d", ports[5]),
	}
	// CONSUL_IMAGE, ETCD_IMAGE, PROMETHEUS_IMAGE and JAEGER_IMAGE come from
	// the environment: make test-e2e sets them to the stand-ins it builds.
	s.env = append(os.Environ(), "REGISTRY="+registry,
		fmt.Sprintf("GATEWAY_PORT=%d", ports[0]), fmt.Sprintf("CONSUL_PORT=%d", ports[1]), fmt.Sprintf("CONSUL_DNS_PORT=%d", ports[2]),
		fmt.Sprintf("PROMETHEUS_PORT=%d", ports[3]), fmt.Sprintf("JAEGER_PORT=%d", ports[4]), fmt.Sprintf("STATUS_PORT=%d", ports[5]))
	want := map[string]int{"consul": 1, "etcd": 1, "init": 1, "user": 2, "hello": 1, "gateway": 1, "prometheus": 1, "jaeger": 1}
	within := 90 * time.Second
	if profile != "" {
		// docker-compose reads COMPOSE_FILE as make up's -f flags.
		s.env = append(s.env, "COMPOSE_FILE=docker-compose.yml:docker-compose."+profile+".yml")
		for _, m := range haMembers {
			want[m] = 1
		}
		within = 150 * time.Second // more containers on the same cores
	}

	s.compose(t, "down", "-v", "--remove-orphans") // what a killed earlier run left
	s.requireLocalImages(t)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := s.run("logs", "--no-color", "--tail=60")
			t.Logf("docker-compose logs:\n%s", out)
		}
		if out, err := s.run("down", "-v", "--remove-orphans"); err != nil {
			t.Errorf("docker-compose down: %v\n%s", err, out)
		}
	})

	s.compose(t, "up", "-d")
	eventually(t, within, func() error {
		count := map[string]int{}
		for _, c := range s.containers(t, "") {
			switch {
			case c.Service == "init" && c.State == "exited":
				// The one-shot init step: done, or failed.
				if c.ExitCode != 0 {
					t.Fatalf("container %s exited with status %d", c.Name, c.ExitCode)
				}
			case c.State != "running":
				t.Fatalf("container %s is %s", c.Name, c.State)
			case c.Ready == "running":
				// No health check in its image (Jaeger): running will do;
				// the test asks its API itself.
			case c.Health != "healthy":
				return fmt.Errorf("container %s is %s", c.Name, c.Health)
			}
			count[c.Service]++
		}
		for service, n := range want {
			if count[service] != n {
				return fmt.Errorf("%d healthy containers of %s, want %d", count[service], service, n)
			}
		}
		return nil
	})
	return s
}

// httpsClient trusts the development CA (make certs), which signed the
// gateway's HTTPS certificate for 127.0.0.1, and bounds every request.
func httpsClient(tb testing.TB) *http.Client {
	tb.Helper()
	pem, err := os.ReadFile(filepath.Join(repoRoot, "certs", "ca.crt"))
	if err != nil {
		tb.Fatalf("%v: run make test-e2e, which makes the certificates and secrets (make certs)", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		tb.Fatal("certs/ca.crt holds no certificate")
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
}

// secret reads one of the stack's secrets from certs/.
func secret(tb testing.TB, name string) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "certs", name))
	if err != nil {
		tb.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// requireLocalImages fails unless every image of the stack is on this
// machine already: docker-compose would try to pull a missing one.
func (s *composeStack) requireLocalImages(tb testing.TB) {
	tb.Helper()
	config := s.compose(tb, "config")
	for _, m := range regexp.MustCompile(`(?m)^\s+image: (\S+)$`).FindAllStringSubmatch(config, -1) {
		if _, err := command(s.env, "docker", "image", "inspect", m[1]); err != nil {
			tb.Fatalf("image %s is not on this machine, and this test pulls nothing: run make test-e2e", m[1])
		}
	}
}

// container is one container of the stack, as docker inspect reports it.
type container struct {
	ID, Name, Service string
	State             string // running, exited...
	ExitCode          int
	Health            string   // starting, healthy, unhealthy
	Ready             string   // its label micro-starter.ready: "running" when it has no health check
	IP                string   // on the project's network
	Published         []string // host ip:port -> container port/proto, sorted
}

// containers lists the stack's containers of service, or all of them.
func (s *composeStack) containers(tb testing.TB, service string) []container {
	tb.Helper()
	args := []string{"ps", "-aq"}
	if service != "" {
		args = append(args, "--filter", "label=com.docker.compose.service="+service)
	}
	ids := s.list(tb, args...)
	if len(ids) == 0 {
		return nil
	}
	var inspected []struct {
		ID    string `json:"Id"`
		Name  string
		State struct {
			Status   string
			ExitCode int
			Health   *struct{ Status string }
		}
		Config          struct{ Labels map[string]string }
		NetworkSettings struct {
			Networks map[string]struct{ IPAddress string }
			Ports    map[string][]struct{ HostIP, HostPort string }
		}
	}
	if err := json.Unmarshal([]byte(mustRun(tb, s.env, "docker", append([]string{"inspect"}, ids...)...)), &inspected); err != nil {
		tb.Fatalf("docker inspect: %v", err)
	}
	var cs []container
	for _, i := range inspected {
		c := container{
			ID:       i.ID,
			Name:     strings.TrimPrefix(i.Name, "/"),
			Service:  i.Config.Labels["com.docker.compose.service"],
			State:    i.State.Status,
			ExitCode: i.State.ExitCode,
			Ready:    i.Config.Labels["micro-starter.ready"],
			IP:       i.NetworkSettings.Networks[s.project+"_default"].IPAddress,
		}
		if i.State.Health != nil {
			c.Health = i.State.Health.Status
		}
		for port, bindings := range i.NetworkSettings.Ports {
			for _, b := range bindings {
				c.Published = append(c.Published, fmt.Sprintf("%s:%s -> %s", b.HostIP, b.HostPort, port))
			}
		}
		slices.Sort(c.Published)
		cs = append(cs, c)
	}
	return cs
}

// list runs `docker <args> --filter label=<the project>` and returns the
// ids it prints: the project's containers (ps) or networks (network ls).
func (s *composeStack) list(tb testing.TB, args ...string) []string {
	tb.Helper()
	args = append(args, "--filter", "label=com.docker.compose.project="+s.project)
	return strings.Fields(mustRun(tb, s.env, "docker", args...))
}

// compose runs docker-compose on the stack's project and returns its output.
func (s *composeStack) compose(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := s.run(args...)
	if err != nil {
		tb.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// run runs docker-compose without failing the test, for cleanup.
func (s *composeStack) run(args ...string) (string, error) {
	return command(s.env, "docker-compose", append([]string{"-p", s.project}, args...)...)
}

// mustRun runs a command in the repository root, bounded by 3 minutes, and
// returns its standard output.
func mustRun(tb testing.TB, env []string, name string, args ...string) string {
	tb.Helper()
	out, err := command(env, name, args...)
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// command runs name in the repository root and returns its standard
// output, or its standard error as well if it fails.
func command(env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = repoRoot
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

// registryView reads the registry the services use through its own API,
// with its administrator's credentials: Consul's HTTP API on its published
// port with the management token; etcd, whose port is not published,
// with etcdctl in its container as root.
type registryView interface {
	Instances(service string) ([]stack.Instance, error)
}

func (s *composeStack) registryView(tb testing.TB) registryView {
	tb.Helper()
	if s.registry == "etcd" {
		return etcdView{s, s.project + "_etcd_1", secret(tb, "etcd-root.password")}
	}
	api, err := stack.OpenAPIAs("consul", s.consul, secret(tb, "consul-management.token"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(api.Close)
	return api
}

type etcdView struct {
	s            *composeStack
	container    string // the etcd member's, where etcdctl runs
	rootPassword string
}

// Instances lists the nodes of the keys go-micro's etcd registry writes
// under /micro/registry/<service>/ (as stack.API does), read with etcdctl.
func (v etcdView) Instances(service string) ([]stack.Instance, error) {
	// 15 s, not etcdctl's 5: logging in is a bcrypt comparison in etcd,
	// seconds on a loaded machine.
	out, err := v.s.etcdctlIn(v.container, "--command-timeout=15s", "--user", "root:"+v.rootPassword, "get", "--prefix", "-w", "json", "/micro/registry/"+service+"/")
	if err != nil {
		return nil, fmt.Errorf("etcdctl: %v: %s", err, out)
	}
	var rsp struct{ Kvs []struct{ Key, Value []byte } } // base64 in etcdctl's JSON
	if err := json.Unmarshal([]byte(out), &rsp); err != nil {
		return nil, fmt.Errorf("etcdctl: %v: %s", err, out)
	}
	var is []stack.Instance
	for _, kv := range rsp.Kvs {
		var svc struct {
			Nodes []struct{ ID, Address string }
		}
		if err := json.Unmarshal(kv.Value, &svc); err != nil {
			return nil, fmt.Errorf("etcd key %s: %w", kv.Key, err)
		}
		for _, n := range svc.Nodes {
			is = append(is, stack.Instance{ID: n.ID, Address: n.Address})
		}
	}
	return is, nil
}

// lookupDNS asks Consul's published DNS server, over network (udp or tcp),
// for the A and SRV records of <service>.service.consul.
func (s *composeStack) lookupDNS(service, network string) (stack.DNSAnswer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return stack.LookupService(ctx, stack.DNSResolver(s.dns, network), service+".service.consul")
}

// dnsAnswer is what DNS should answer for instances: the address of each
// in an A record, and its address and port in an SRV record.
func dnsAnswer(tb testing.TB, instances []stack.Instance) stack.DNSAnswer {
	tb.Helper()
	var a stack.DNSAnswer
	for _, i := range instances {
		host, _, err := net.SplitHostPort(i.Address)
		if err != nil {
			tb.Fatalf("instance %s: %v", i.ID, err)
		}
		if !slices.Contains(a.A, host) {
			a.A = append(a.A, host)
		}
		a.SRV = append(a.SRV, i.Address)
	}
	slices.Sort(a.A)
	slices.Sort(a.SRV)
	return a
}

// etcdctl runs etcdctl in the stack's etcd container.
func (s *composeStack) etcdctl(args ...string) (string, error) {
	return s.etcdctlIn(s.project+"_etcd_1", args...)
}

// etcdctlIn runs etcdctl in the container named container (an etcd member).
func (s *composeStack) etcdctlIn(container string, args ...string) (string, error) {
	return command(s.env, "docker", append([]string{"exec", container, "/usr/local/bin/etcdctl"}, args...)...)
}

func mustInstances(tb testing.TB, r registryView, service string) []stack.Instance {
	tb.Helper()
	is, err := r.Instances(service)
	if err != nil {
		tb.Fatal(err)
	}
	return is
}

func mustIDs(tb testing.TB, r registryView, service string) []string {
	tb.Helper()
	var ids []string
	for _, i := range mustInstances(tb, r, service) {
		ids = append(ids, i.ID)
	}
	return ids
}

// probe runs e2e/testdata/probe in a throwaway container on the stack's
// network (in the user image, for its empty file system): one call of
// user's Get to addr, with args and the files given (host path ->
// container path). It returns the probe's output and whether the call
// succeeded.
func (s *composeStack) probe(tb testing.TB, bin, addr string, files map[string]string, args ...string) (string, bool) {
	tb.Helper()
	run := []string{"run", "--rm", "--network", s.project + "_default", "--entrypoint", "/probe",
		"-v", bin + ":/probe:ro"}
	for host, in := range files {
		abs, err := filepath.Abs(host)
		if err != nil {
			tb.Fatal(err)
		}
		run = append(run, "-v", abs+":"+in+":ro")
	}
	run = append(run, "micro-starter/user:dev", "-addr", addr)
	out, err := command(s.env, "docker", append(run, args...)...)
	return strings.TrimSpace(out), err == nil
}

// buildProbe builds e2e/testdata/probe, static, for the probe container.
func buildProbe(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "probe")
	env := append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	mustRun(tb, env, "go", "build", "-o", bin, "./e2e/testdata/probe")
	return bin
}

// load sends GET url every 10 ms, for at most 2 minutes, until stopped, and
// counts the answers that are 200 with a JSON body naming an instance.
type load struct {
	client *http.Client
	url    string
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once

	mu         sync.Mutex
	ok, failed int
	errors     []string // the first few failures
}

func startLoad(tb testing.TB, client *http.Client, url string) *load {
	l := &load{client: client, url: url, stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	tb.Cleanup(l.halt)
	return l
}

func (l *load) run() {
	defer close(l.done)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	limit := time.After(2 * time.Minute)
	for {
		select {
		case <-l.stop:
			return
		case <-limit:
			return
		case <-tick.C:
		}
		var rsp struct{ Instance string }
		err := stack.GetJSON(l.client, l.url, &rsp)
		if err == nil && rsp.Instance == "" {
			err = fmt.Errorf("GET %s: no instance in the answer", l.url)
		}
		l.mu.Lock()
		if err != nil {
			l.failed++
			if len(l.errors) < 5 {
				l.errors = append(l.errors, time.Now().Format("15:04:05.000 ")+err.Error())
			}
		} else {
			l.ok++
		}
		l.mu.Unlock()
	}
}

func (l *load) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok + l.failed
}

// running reports whether a few requests have been sent.
func (l *load) running() error {
	if n := l.total(); n < 20 {
		return fmt.Errorf("load: %d requests sent so far", n)
	}
	return nil
}

// stopAfterMore lets n more requests go, then stops the load; its counts
// are final then.
func (l *load) stopAfterMore(tb testing.TB, n int) {
	tb.Helper()
	l.waitForMore(tb, n)
	l.halt()
}

// waitForMore returns once n more requests have gone.
func (l *load) waitForMore(tb testing.TB, n int) {
	tb.Helper()
	target := l.total() + n
	eventually(tb, 20*time.Second, func() error {
		if got := l.total(); got < target {
			return fmt.Errorf("load: %d requests sent, waiting for %d", got, target)
		}
		return nil
	})
}

func (l *load) halt() {
	l.once.Do(func() { close(l.stop) })
	<-l.done
}

// holds checks every 250 ms, until the time until, that check passes: what
// must stay true for a while (no instance lost for longer than a TTL). A
// check that cannot tell (check returns unknown: the registry read timed
// out on a loaded machine) proves nothing either way and is skipped, but
// one past until must tell.
func holds(tb testing.TB, until time.Time, check func() (unknown, err error)) {
	tb.Helper()
	err := poll.Until(time.Until(until)+20*time.Second, 250*time.Millisecond, func() error {
		unknown, err := check()
		switch {
		case err != nil:
			return poll.Final(fmt.Errorf("%w (%v before %s)", err, time.Until(until).Round(100*time.Millisecond), until.Format("15:04:05.0")))
		case unknown != nil:
			tb.Logf("%s: %v", time.Now().Format("15:04:05.0"), unknown)
			return unknown
		case time.Now().Before(until):
			return errors.New("still watching")
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// eventually polls every 250 ms: each check runs docker or calls the stack
// through Docker's port forwarding.
func eventually(tb testing.TB, within time.Duration, check func() error) {
	tb.Helper()
	if err := poll.Until(within, 250*time.Millisecond, check); err != nil {
		tb.Fatalf("not within %v: %v", within, err)
	}
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
