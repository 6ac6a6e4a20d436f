//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/example/micro-starter/internal/stack"
)

func TestStack(t *testing.T) {
	requireDocker(t)
	for _, registry := range []string{"consul", "etcd"} { // REGISTRY for docker-compose.yml
		t.Run(registry, func(t *testing.T) {
			s := startStack(t, registry)
			reg := s.registryView(t)

			// The gateway's health check needs user and hello registered,
			// so a healthy stack answers at once.
			var users struct {
				Users    []struct{ ID string }
				Instance string
			}
			stack.MustGetJSON(t, s.http, s.gateway+"/users", &users)
			if len(users.Users) == 0 || !strings.HasPrefix(users.Instance, "user-") {
				t.Errorf("GET /users: %+v, want users and a user instance", users)
			}
			var hello struct{ Message string }
			stack.MustGetJSON(t, s.http, s.gateway+"/hello?user_id=ada", &hello)
			if want := "Hello, Ada Lovelace!"; hello.Message != want {
				t.Errorf("GET /hello?user_id=ada: message %q, want %q", hello.Message, want)
			}
			// Its trace is looked for in Jaeger below, once sent.
			traced := s.tracedHello(t)

			// The registry's own API lists every service, and each user
			// instance under the address of its container.
			eventually(t, 20*time.Second, func() error {
				for service, want := range map[string]int{"user": 2, "hello": 1, "gateway": 1} {
					if got := len(mustInstances(t, reg, service)); got != want {
						return fmt.Errorf("%s lists %d instances of %s, want %d", registry, got, service, want)
					}
				}
				return nil
			})
			registered := mustInstances(t, reg, "user")
			containers := s.containers(t, "user")
			byAddress := map[string]string{} // host:port -> id
			for _, i := range registered {
				byAddress[i.Address] = i.ID
			}
			for _, c := range containers {
				if _, ok := byAddress[c.IP+":9090"]; !ok {
					t.Fatalf("%s: container %s (%s:9090) not among the registered addresses %v", registry, c.Name, c.IP, registered)
				}
			}

			// Consul's DNS, published on 127.0.0.1, answers for user over
			// UDP and TCP with the passing instances: each container's
			// address and port. With etcd as the registry, Consul knows
			// none of them.
			for _, network := range []string{"udp", "tcp"} {
				s.resolvesUser(t, network, registered)
			}

			// Round robin: both user instances answer.
			seen := map[string]bool{}
			for i := 0; i < 20 && len(seen) < len(registered); i++ {
				stack.MustGetJSON(t, s.http, s.gateway+"/users", &users)
				seen[users.Instance] = true
			}
			if got, want := slices.Sorted(maps.Keys(seen)), slices.Sorted(maps.Values(byAddress)); !slices.Equal(got, want) {
				t.Errorf("instances that answered %v, want the registered ones %v", got, want)
			}

			// Locked down: only the gateway (its API, its status page),
			// Consul's API, UI and DNS, Prometheus and Jaeger's query API
			// are published, on the loopback interface; the registries
			// refuse whoever has no credentials (Consul lets anyone read
			// its catalogue, which DNS needs, but nothing more); and a
			// container on the compose network without a certificate from
			// the stack's CA cannot call user, while one with a
			// certificate can.
			for _, c := range s.containers(t, "") {
				want := map[string][]string{
					"gateway": {"127.0.0.1:" + strings.TrimPrefix(s.gateway, "https://127.0.0.1:") + " -> 8080/tcp",
						strings.TrimPrefix(s.status, "http://") + " -> 9100/tcp"},
					"consul":     {s.consul + " -> 8500/tcp", s.dns + " -> 8600/tcp", s.dns + " -> 8600/udp"},
					"prometheus": {strings.TrimPrefix(s.prometheus, "http://") + " -> 9090/tcp"},
					"jaeger":     {strings.TrimPrefix(s.jaeger, "http://") + " -> 16686/tcp"},
				}[c.Service]
				slices.Sort(want) // as Published is
				if !slices.Equal(c.Published, want) {
					t.Errorf("container %s publishes %v, want %v", c.Name, c.Published, want)
				}
			}
			for _, call := range []struct{ method, path, body string }{
				{http.MethodPut, "/v1/agent/service/register", `{"ID": "user-impostor", "Name": "user", "Port": 9090}`},
				{http.MethodPut, "/v1/kv/anything", "x"},
				{http.MethodGet, "/v1/acl/tokens", ""},
			} {
				if code := s.consulStatus(t, call.method, call.path, call.body); code != http.StatusForbidden {
					t.Errorf("Consul without a token, %s %s: %d, want 403 (ACLs, default deny)", call.method, call.path, code)
				}
			}
			if out, err := s.etcdctl("get", "--prefix", "/micro/registry/"); err == nil || !strings.Contains(out, "user name is empty") {
				t.Errorf("etcd without a user: %v %q, want the error \"user name is empty\" (authentication on)", err, out)
			}
			probe := buildProbe(t)
			certs := func(names ...string) map[string]string {
				files := map[string]string{}
				for _, n := range names {
					files[filepath.Join(repoRoot, "certs", n)] = "/certs/" + n
				}
				return files
			}
			for _, tc := range []struct {
				name  string
				files map[string]string
				args  []string
				want  string // in the probe's output
				ok    bool
			}{
				{"plaintext", nil, []string{"-plaintext"}, "", false},
				{"TLS without a certificate", certs("ca.crt"), []string{"-ca", "/certs/ca.crt"}, "tls: certificate required", false},
				// The control: the same probe, with hello's certificate, calls user.
				{"hello's certificate", certs("ca.crt", "hello.crt", "hello.key"),
					[]string{"-ca", "/certs/ca.crt", "-cert", "/certs/hello.crt", "-key", "/certs/hello.key"}, "Ada Lovelace", true},
			} {
				out, ok := s.probe(t, probe, registered[0].Address, tc.files, tc.args...)
				t.Logf("probe %s, %s: %s", registered[0].Address, tc.name, out)
				if ok != tc.ok || !strings.Contains(out, tc.want) {
					t.Errorf("a call to user from a container on the network, %s: succeeded %v (%q), want %v with %q", tc.name, ok, out, tc.ok, tc.want)
				}
			}

			// Seen: Prometheus scraped every instance, found through the
			// registry, after the requests above; Jaeger has the trace of
			// one /hello across the three services.
			s.requireMetrics(t)
			s.requireTrace(t, traced)
			s.requireStatusPage(t)

			// Stopping one user instance under a steady load loses no
			// request, and the instance leaves the registry.
			stopped := containers[0]
			stoppedID := byAddress[stopped.IP+":9090"]
			l := startLoad(t, s.http, s.gateway+"/users")
			eventually(t, 10*time.Second, l.running)
			// docker-compose stop stops whole services: this is what it does
			// to each of their containers (SIGTERM, then SIGKILL after 20 s).
			mustRun(t, s.env, "docker", "stop", "--time", "20", stopped.ID)
			eventually(t, 20*time.Second, func() error {
				ids := mustIDs(t, reg, "user")
				if slices.Contains(ids, stoppedID) || len(ids) != 1 {
					return fmt.Errorf("%s still lists %s (%s) among %v", registry, stoppedID, stopped.Name, ids)
				}
				return nil
			})
			l.stopAfterMore(t, 50) // and a few more requests with one instance left
			s.resolvesUser(t, "udp", mustInstances(t, reg, "user"))
			t.Logf("load while %s stopped: %d requests answered, %d failed", stopped.Name, l.ok, l.failed)
			if l.failed > 0 || l.ok < 100 {
				t.Errorf("want no failure and at least 100 answers; first failures:\n%s", strings.Join(l.errors, "\n"))
			}
			// Exit status 0: it shut down on SIGTERM, not on docker's SIGKILL.
			for _, c := range s.containers(t, "user") {
				if c.ID == stopped.ID && (c.State != "exited" || c.ExitCode != 0) {
					t.Errorf("%s after docker stop: %s, exit status %d; want exited, 0", c.Name, c.State, c.ExitCode)
				}
			}

			// make down leaves nothing of the project behind.
			mustRun(t, s.env, "make", "-s", "down", "COMPOSE_PROJECT="+s.project)
			if ids := s.list(t, "ps", "-aq"); len(ids) > 0 {
				t.Errorf("containers left after make down: %v", ids)
			}
			if ids := s.list(t, "network", "ls", "-q"); len(ids) > 0 {
				t.Errorf("networks left after make down: %v", ids)
			}
		})
	}
}

// resolvesUser checks that Consul's published DNS soon answers
// user.service.consul over network with instances, the ones the registry
// lists; with etcd as the registry, that it knows no user.
func (s *composeStack) resolvesUser(t *testing.T, network string, instances []stack.Instance) {
	t.Helper()
	if s.registry != "consul" {
		got, err := s.lookupDNS("user", network)
		if dnsErr := (*net.DNSError)(nil); !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
			t.Errorf("DNS over %s, user.service.consul with %s as the registry: %+v, %v; want no such host", network, s.registry, got, err)
		}
		return
	}
	want := dnsAnswer(t, instances)
	eventually(t, 10*time.Second, func() error {
		got, err := s.lookupDNS("user", network)
		if err != nil {
			return fmt.Errorf("DNS over %s: %w", network, err)
		}
		if !reflect.DeepEqual(got, want) {
			return fmt.Errorf("DNS over %s, user.service.consul: %+v, want %+v (the registry's instances)", network, got, want)
		}
		return nil
	})
	t.Logf("DNS over %s, user.service.consul: %+v", network, want)
}

// consulStatus sends a request without a token to Consul's published API
// and returns the status code.
func (s *composeStack) consulStatus(tb testing.TB, method, path, body string) int {
	tb.Helper()
	req, err := http.NewRequest(method, "http://"+s.consul+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	rsp, err := s.http.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	rsp.Body.Close()
	return rsp.StatusCode
}
