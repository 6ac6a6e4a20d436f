//go:build e2e

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/example/micro-starter/internal/stack"
)

// TestHAStack runs make up PROFILE=ha's stack (docker-compose.ha.yml: three
// etcd members, three Consul servers behind a client agent) with each
// registry, kills the registry's leader (SIGKILL) under a light load
// through the gateway, and checks that no request fails while the others
// elect a new one, that no instance leaves the registry, and that the
// killed member, started again, rejoins.
func TestHAStack(t *testing.T) {
	requireDocker(t)
	for _, registry := range []string{"consul", "etcd"} {
		t.Run(registry, func(t *testing.T) {
			s := startProfile(t, registry, "ha")
			var users struct{ Instance string }
			stack.MustGetJSON(t, s.http, s.gateway+"/users", &users)

			leader := s.leader(t, "")
			l := startLoad(t, s.http, s.gateway+"/users")
			eventually(t, 10*time.Second, l.running)
			t.Logf("%s: killing the leader %s", registry, leader.Name)
			mustRun(t, s.env, "docker", "kill", leader.ID)
			killed := time.Now()
			var next container
			eventually(t, 30*time.Second, func() error {
				next = s.leader(t, leader.ID)
				if next.ID == "" {
					return errors.New("no leader yet")
				}
				return nil
			})
			t.Logf("%s: %s leads, %v after the kill", registry, next.Name, time.Since(killed).Round(100*time.Millisecond))
			// No instance is lost from discovery: read through what is
			// still up, the registry lists every instance until longer than
			// a registration's TTL (10 s) after the kill, so their renewals
			// reached the members left (etcd: every member's address; Consul:
			// the client agent holds the registrations).
			reg := s.registryView(t)
			if registry == "etcd" {
				reg = etcdView{s, next.Name, secret(t, "etcd-root.password")}
			}
			holds(t, killed.Add(12*time.Second), func() (unknown, err error) {
				for service, want := range map[string]int{"user": 2, "hello": 1, "gateway": 1} {
					is, err := reg.Instances(service)
					if err != nil {
						return err, nil
					}
					if len(is) != want {
						return nil, fmt.Errorf("%s lists %d instances of %s after the leader's loss, want %d", registry, len(is), service, want)
					}
				}
				return nil, nil
			})
			// Past one re-registration (every 5 s) of every instance with
			// the new leader.
			l.waitForMore(t, 600)

			mustRun(t, s.env, "docker", "start", leader.ID)
			eventually(t, 90*time.Second, func() error { return s.rejoined(t, leader) })
			t.Logf("%s: %s rejoined, %v after the kill", registry, leader.Name, time.Since(killed).Round(100*time.Millisecond))
			l.stopAfterMore(t, 100)
			t.Logf("load while the leader was killed and restarted: %d requests answered, %d failed", l.ok, l.failed)
			if l.failed > 0 || l.ok < 700 {
				t.Errorf("want no failure and at least 700 answers; first failures:\n%s", strings.Join(l.errors, "\n"))
			}
		})
	}
}

// leader returns the registry's leader now: the Consul server or etcd
// member that leads, asked of the others than the container not (killed);
// a zero container if there is none.
func (s *composeStack) leader(t *testing.T, not string) container {
	t.Helper()
	if s.registry == "consul" {
		// The client agent knows the leader's server address (ip:8300).
		// An error (500 "No cluster leader") while they elect one.
		var addr string
		if err := stack.GetJSON(s.http, "http://"+s.consul+"/v1/status/leader", &addr); err != nil {
			t.Logf("Consul leader: %v", err)
			return container{}
		}
		for _, c := range s.members(t) {
			if addr != "" && c.IP+":8300" == addr && c.ID != not {
				return c
			}
		}
		return container{}
	}
	var leader uint64
	ids := map[uint64]container{}
	for _, c := range s.members(t) {
		if c.ID == not || c.State != "running" {
			continue
		}
		st, err := s.etcdStatus(c)
		if err != nil {
			t.Logf("etcd member %s: %v", c.Name, err)
			continue
		}
		ids[st.Header.MemberID] = c
		if st.Leader != 0 {
			leader = st.Leader
		}
	}
	return ids[leader]
}

// members lists the registry's members: Consul's servers or etcd's members.
func (s *composeStack) members(t *testing.T) []container {
	t.Helper()
	var cs []container
	for _, service := range []string{"consul-1", "consul-2", "consul-3", "etcd", "etcd-2", "etcd-3"} {
		if strings.HasPrefix(service, s.registry) {
			cs = append(cs, s.containers(t, service)...)
		}
	}
	return cs
}

// etcdStatus is `etcdctl endpoint status` of the member in c, asked there:
// its id and the leader it knows (0 if none). It answers without a user.
type etcdStatus struct {
	Header struct {
		MemberID uint64 `json:"member_id"`
	} `json:"header"`
	Leader uint64 `json:"leader"`
}

func (s *composeStack) etcdStatus(c container) (etcdStatus, error) {
	out, err := s.etcdctlIn(c.Name, "--command-timeout=3s", "endpoint", "status", "-w", "json")
	if err != nil {
		return etcdStatus{}, fmt.Errorf("%v: %s", err, out)
	}
	var rsp []struct{ Status etcdStatus }
	if err := json.Unmarshal([]byte(out), &rsp); err != nil || len(rsp) != 1 {
		return etcdStatus{}, fmt.Errorf("endpoint status: %v: %s", err, out)
	}
	return rsp[0].Status, nil
}

// rejoined reports whether the member in c is back in the cluster: an
// etcd member that knows the cluster's leader; a Consul server that
// autopilot counts as a healthy voter (alive, its log caught up).
func (s *composeStack) rejoined(t *testing.T, c container) error {
	if s.registry == "etcd" {
		st, err := s.etcdStatus(c)
		if err != nil {
			return err
		}
		if st.Leader == 0 {
			return fmt.Errorf("%s knows no leader", c.Name)
		}
		return nil
	}
	req, err := http.NewRequest(http.MethodGet, "http://"+s.consul+"/v1/operator/autopilot/health", nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Consul-Token", secret(t, "consul-management.token"))
	rsp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer rsp.Body.Close()
	// 429 when a server is not healthy, with the same body.
	var health struct {
		Servers []struct {
			Name, SerfStatus string
			Healthy, Voter   bool
		}
	}
	if err := json.NewDecoder(rsp.Body).Decode(&health); err != nil {
		return fmt.Errorf("autopilot health: %d: %w", rsp.StatusCode, err)
	}
	name := c.Service // the server's node name
	for _, sv := range health.Servers {
		if sv.Name == name {
			if !sv.Healthy || !sv.Voter {
				return fmt.Errorf("autopilot: server %s %s, healthy %v, voter %v", name, sv.SerfStatus, sv.Healthy, sv.Voter)
			}
			return nil
		}
	}
	return fmt.Errorf("autopilot does not list %s: %+v", name, health.Servers)
}
