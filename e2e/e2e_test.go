//go:build e2e

package e2e

import (
	"fmt"
	"maps"
	"path/filepath"
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

			// Round robin: both user instances answer.
			seen := map[string]bool{}
			for i := 0; i < 20 && len(seen) < len(registered); i++ {
				stack.MustGetJSON(t, s.http, s.gateway+"/users", &users)
				seen[users.Instance] = true
			}
			if got, want := slices.Sorted(maps.Keys(seen)), slices.Sorted(maps.Values(byAddress)); !slices.Equal(got, want) {
				t.Errorf("instances that answered %v, want the registered ones %v", got, want)
			}

			// Locked down: only the gateway and Consul's API and UI are
			// published, on the loopback interface; the registries refuse
			// whoever has no credentials; and a container on the compose
			// network without a certificate from the stack's CA cannot
			// call user, while one with a certificate can.
			for _, c := range s.containers(t, "") {
				want := map[string][]string{
					"gateway": {"127.0.0.1:" + strings.TrimPrefix(s.gateway, "https://127.0.0.1:") + " -> 8080/tcp"},
					"consul":  {s.consul + " -> 8500/tcp"},
				}[c.Service]
				if !slices.Equal(c.Published, want) {
					t.Errorf("container %s publishes %v, want %v", c.Name, c.Published, want)
				}
			}
			var anonymous map[string][]string
			stack.MustGetJSON(t, s.http, "http://"+s.consul+"/v1/catalog/services", &anonymous)
			if len(anonymous) > 0 {
				t.Errorf("Consul without a token lists %v, want nothing (ACLs, default deny)", anonymous)
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
