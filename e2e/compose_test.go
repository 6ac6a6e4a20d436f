//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/internal/stack"
)

// repoRoot holds docker-compose.yml and the Makefile.
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
	env      []string // docker-compose's environment: REGISTRY, ports, images
	gateway  string   // base URL of the gateway's API
	registry string   // host:port of the API of the registry the services use
}

// startStack starts docker-compose.yml with registry, on free loopback
// ports, and returns once every container is healthy. The stack is removed
// when the test ends, after its logs are printed if the test failed.
func startStack(t *testing.T, registry string) *composeStack {
	t.Helper()
	ports := stack.MustFreePorts(t, 3)
	s := &composeStack{
		project:  "microstarter-e2e-" + registry,
		gateway:  fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		registry: fmt.Sprintf("127.0.0.1:%d", map[string]int{"consul": ports[1], "etcd": ports[2]}[registry]),
	}
	// CONSUL_IMAGE and ETCD_IMAGE come from the environment: make test-e2e
	// sets them to the stand-ins it builds.
	s.env = append(os.Environ(), "REGISTRY="+registry,
		fmt.Sprintf("GATEWAY_PORT=%d", ports[0]), fmt.Sprintf("CONSUL_PORT=%d", ports[1]), fmt.Sprintf("ETCD_PORT=%d", ports[2]))

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
	want := map[string]int{"consul": 1, "etcd": 1, "user": 2, "hello": 1, "gateway": 1}
	eventually(t, 90*time.Second, func() error {
		count := map[string]int{}
		for _, c := range s.containers(t, "") {
			if c.State != "running" {
				t.Fatalf("container %s is %s", c.Name, c.State)
			}
			if c.Health != "healthy" {
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
	Health            string // starting, healthy, unhealthy
	IP                string // on the project's network
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
			IP:       i.NetworkSettings.Networks[s.project+"_default"].IPAddress,
		}
		if i.State.Health != nil {
			c.Health = i.State.Health.Status
		}
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

// load sends GET url every 10 ms, for at most a minute, until stopped, and
// counts the answers that are 200 with a JSON body naming an instance.
type load struct {
	url  string
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu         sync.Mutex
	ok, failed int
	errors     []string // the first few failures
}

func startLoad(tb testing.TB, url string) *load {
	l := &load{url: url, stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	tb.Cleanup(l.halt)
	return l
}

func (l *load) run() {
	defer close(l.done)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	limit := time.After(time.Minute)
	for {
		select {
		case <-l.stop:
			return
		case <-limit:
			return
		case <-tick.C:
		}
		var rsp struct{ Instance string }
		err := stack.GetJSON(httpClient, l.url, &rsp)
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
	target := l.total() + n
	eventually(tb, 20*time.Second, func() error {
		if got := l.total(); got < target {
			return fmt.Errorf("load: %d requests sent, waiting for %d", got, target)
		}
		return nil
	})
	l.halt()
}

func (l *load) halt() {
	l.once.Do(func() { close(l.stop) })
	<-l.done
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
