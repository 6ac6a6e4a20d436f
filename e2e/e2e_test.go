//go:build e2e

package e2e

import (
	"fmt"
	"maps"
	"net/http"
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
			// The registry's own API, on its published port.
			reg := stack.MustOpenAPI(t, registry, s.registry)

			// The gateway's health check needs user and hello registered,
			// so a healthy stack answers at once.
			var users struct {
				Users    []struct{ ID string }
				Instance string
			}
			stack.MustGetJSON(t, httpClient, s.gateway+"/users", &users)
			if len(users.Users) == 0 || !strings.HasPrefix(users.Instance, "user-") {
				t.Errorf("GET /users: %+v, want users and a user instance", users)
			}
			var hello struct{ Message string }
			stack.MustGetJSON(t, httpClient, s.gateway+"/hello?user_id=ada", &hello)
			if want := "Hello, Ada Lovelace!"; hello.Message != want {
				t.Errorf("GET /hello?user_id=ada: message %q, want %q", hello.Message, want)
			}

			// The registry's own API lists every service, and each user
			// instance under the address of its container.
			eventually(t, 20*time.Second, func() error {
				for service, want := range map[string]int{"user": 2, "hello": 1, "gateway": 1} {
					if got := len(reg.MustInstances(t, service)); got != want {
						return fmt.Errorf("%s lists %d instances of %s, want %d", registry, got, service, want)
					}
				}
				return nil
			})
			registered := reg.MustInstances(t, "user")
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
				stack.MustGetJSON(t, httpClient, s.gateway+"/users", &users)
				seen[users.Instance] = true
			}
			if got, want := slices.Sorted(maps.Keys(seen)), slices.Sorted(maps.Values(byAddress)); !slices.Equal(got, want) {
				t.Errorf("instances that answered %v, want the registered ones %v", got, want)
			}

			// Stopping one user instance under a steady load loses no
			// request, and the instance leaves the registry.
			stopped := containers[0]
			stoppedID := byAddress[stopped.IP+":9090"]
			l := startLoad(t, s.gateway+"/users")
			eventually(t, 10*time.Second, l.running)
			// docker-compose stop stops whole services: this is what it does
			// to each of their containers (SIGTERM, then SIGKILL after 20 s).
			mustRun(t, s.env, "docker", "stop", "--time", "20", stopped.ID)
			eventually(t, 20*time.Second, func() error {
				ids := reg.MustIDs(t, "user")
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

// httpClient bounds every request the test makes.
var httpClient = &http.Client{Timeout: 5 * time.Second}
