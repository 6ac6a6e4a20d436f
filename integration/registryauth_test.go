package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/example/micro-starter/internal/devcerts"
	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/internal/regauth"
	"github.com/example/micro-starter/internal/stack"
)

// lockedRegistry is a registry started as the compose stack runs it: Consul
// with ACLs on and default deny, or etcd with auth on, and an account for
// each of user, hello and gateway.
type lockedRegistry struct {
	*stack.Registry
	secret   string // management token / root password
	accounts map[string]regauth.Account
}

func uuid(tb testing.TB) string {
	tb.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// forEachLockedRegistry runs test against a locked-down Consul and etcd.
func forEachLockedRegistry(t *testing.T, test func(t *testing.T, reg *lockedRegistry)) {
	skipIfShort(t)
	for _, name := range []string{"consul", "etcd"} {
		t.Run(name, func(t *testing.T) {
			reg := &lockedRegistry{secret: uuid(t), accounts: map[string]regauth.Account{}}
			var accounts []regauth.Account
			for _, s := range []string{"user", "hello", "gateway"} {
				a := regauth.Account{Name: s, ConsulToken: uuid(t), EtcdPassword: uuid(t)}
				reg.accounts[s] = a
				accounts = append(accounts, a)
			}
			reg.Registry = stack.MustStartRegistry(t, name, stack.Auth(reg.secret, accounts...))
			test(t, reg)
		})
	}
}

// credentials are the flags that give a service the account of as; etcd's
// password goes through a file, never a flag.
func (r *lockedRegistry) credentials(tb testing.TB, as string) []string {
	tb.Helper()
	a := r.accounts[as]
	if r.Name == "consul" {
		return []string{"--registry_token", a.ConsulToken}
	}
	file := filepath.Join(tb.TempDir(), "password")
	if err := os.WriteFile(file, []byte(a.EtcdPassword+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return []string{"--registry_username", a.Name, "--registry_password_file", file}
}

func TestLockedRegistryServesWithCredentials(t *testing.T) {
	forEachLockedRegistry(t, func(t *testing.T, reg *lockedRegistry) {
		user := mustStartService(t, reg.Registry, "user", "user", reg.credentials(t, "user")...)
		hello := mustStartService(t, reg.Registry, "hello", "hello", reg.credentials(t, "hello")...)
		url := gatewayURL(t, mustStartService(t, reg.Registry, "gateway", "gateway", append(reg.credentials(t, "gateway"), "--http_address", "127.0.0.1:0")...))

		poll.Eventually(t, 20*time.Second, func() error {
			if code := get(t, url+"/readyz", nil); code != http.StatusOK {
				return fmt.Errorf("GET /readyz: %d", code)
			}
			return nil
		})
		var rsp struct {
			Message   string
			Instances map[string]string
		}
		if code := get(t, url+"/hello?user_id=ada", &rsp); code != http.StatusOK {
			t.Fatalf("GET /hello?user_id=ada: %d, want 200", code)
		}
		if rsp.Instances["hello"] != hello.ID || rsp.Instances["user"] != user.ID {
			t.Errorf("answered by %v, want hello %s and user %s, the instances the registry lists", rsp.Instances, hello.ID, user.ID)
		}
	})
}

// runService runs the binary of service to completion with env added to
// the hermetic environment, bounded by 15s.
func runService(tb testing.TB, service string, env []string, args ...string) (stdout, stderr string, err error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, service), args...)
	cmd.Env = append(stack.HermeticEnv(), env...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if ctx.Err() != nil {
		tb.Fatalf("%s %v still running after 15s; stdout:\n%s", service, args, out.String())
	}
	return out.String(), errOut.String(), err
}

func TestLockedRegistryRefusesWrongCredentials(t *testing.T) {
	forEachLockedRegistry(t, func(t *testing.T, reg *lockedRegistry) {
		user := reg.accounts["user"]
		tests := []struct {
			name    string
			service string
			args    []string
			env     map[string][]string // registry -> variables
			want    map[string]string   // registry -> what stderr must say
		}{
			{
				name: "no credentials", service: "user",
				want: map[string]string{"consul": "Permission denied", "etcd": "user name is empty"},
			},
			{
				name: "wrong credentials", service: "user",
				args: map[string][]string{"consul": {"--registry_token", uuid(t)}, "etcd": {"--registry_username", "user"}}[reg.Name],
				env:  map[string][]string{"etcd": {"MICRO_REGISTRY_PASSWORD=wrong-" + user.EtcdPassword}},
				want: map[string]string{"consul": "ACL not found", "etcd": "authentication failed"},
			},
			{
				name: "another service's credentials", service: "hello",
				args: map[string][]string{"consul": {"--registry_token", user.ConsulToken}, "etcd": {"--registry_username", "user"}}[reg.Name],
				env:  map[string][]string{"etcd": {"MICRO_REGISTRY_PASSWORD=" + user.EtcdPassword}},
				want: map[string]string{"consul": "Permission denied", "etcd": "permission denied"},
			},
			{
				// The registry clients' own variables do not stand in for
				// ours: the service runs with what its flags say.
				name: "credentials in the registry client's variables", service: "user",
				env: map[string][]string{
					"consul": {"CONSUL_HTTP_TOKEN=" + user.ConsulToken},
					"etcd":   {"ETCD_USERNAME=user", "ETCD_PASSWORD=" + user.EtcdPassword},
				},
				want: map[string]string{"consul": "Permission denied", "etcd": "user name is empty"},
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				args := append([]string{"--registry", reg.Name, "--registry_address", reg.Addr,
					"--server_address", "127.0.0.1:0", "--registry_attempts", "5"}, tt.args...)
				start := time.Now()
				_, stderr, err := runService(t, tt.service, tt.env[reg.Name], args...)
				if code := exitCode(t, err); code == 0 {
					t.Errorf("exit status 0, want non-zero")
				}
				if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tt.want[reg.Name]) {
					t.Errorf("stderr %q: want one line with the registry's answer %q", stderr, tt.want[reg.Name])
				}
				if strings.Contains(stderr, user.EtcdPassword) {
					t.Errorf("stderr shows the password: %q", stderr)
				}
				// A refusal is not retried as if the registry were down:
				// the 5 attempts would take 4 s of pauses.
				if took := time.Since(start); took > 4*time.Second {
					t.Errorf("took %v to give up, want no retries of a refusal", took)
				}
				if is := reg.MustInstances(t, tt.service); len(is) != 0 {
					t.Errorf("registry lists %v, want nothing registered", is)
				}
			})
		}
	})
}

// revoke takes the account of service away while it runs: its Consul
// token deleted, its etcd user deleted.
func (r *lockedRegistry) revoke(tb testing.TB, service string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if r.Name == "etcd" {
		if _, err := r.Etcd().UserDelete(ctx, r.accounts[service].Name); err != nil {
			tb.Fatal(err)
		}
		return
	}
	c, err := api.NewClient(&api.Config{Address: r.Addr, Scheme: "http", Token: r.secret, HttpClient: &http.Client{Timeout: 5 * time.Second}})
	if err != nil {
		tb.Fatal(err)
	}
	q := (&api.QueryOptions{Token: r.accounts[service].ConsulToken}).WithContext(ctx)
	self, _, err := c.ACL().TokenReadSelf(q)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := c.ACL().TokenDelete(self.AccessorID, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		tb.Fatal(err)
	}
}

func TestRevokedCredentialsServeFromCache(t *testing.T) {
	forEachLockedRegistry(t, func(t *testing.T, reg *lockedRegistry) {
		mustStartService(t, reg.Registry, "user", "user", reg.credentials(t, "user")...)
		hello := mustStartService(t, reg.Registry, "hello", "hello", reg.credentials(t, "hello")...)
		// A short cache, so that the gateway's lookups go to the registry
		// while the test runs, rather than to a list cached for a minute.
		gateway := mustStartService(t, reg.Registry, "gateway", "gateway",
			append(reg.credentials(t, "gateway"), "--http_address", "127.0.0.1:0", "--registry_cache_ttl", "500ms")...)
		url := gatewayURL(t, gateway)
		poll.Eventually(t, 20*time.Second, func() error {
			if code := get(t, url+"/readyz", nil); code != http.StatusOK {
				return fmt.Errorf("GET /readyz: %d", code)
			}
			return nil
		})

		l := startLoad(t, url+"/hello?user_id=ada", 2)
		l.waitForSuccesses(t, 20)
		reg.revoke(t, "gateway")

		poll.Eventually(t, 15*time.Second, func() error {
			if code := get(t, url+"/readyz", nil); code != http.StatusServiceUnavailable {
				return fmt.Errorf("GET /readyz: %d, want 503 once the gateway's credentials are revoked", code)
			}
			return nil
		})
		// The log says what the registry answered, and that the lookups
		// are served from the last good answer.
		answer := map[string]string{"consul": "ACL not found", "etcd": "authentication failed"}[reg.Name]
		poll.Eventually(t, 10*time.Second, func() error {
			for _, line := range strings.Split(mustRead(t, gateway.Log), "\n") {
				if strings.Contains(line, answer) && strings.Contains(line, "using the last answer") {
					return nil
				}
			}
			return fmt.Errorf("the gateway's log has no line with the registry's answer %q and the cached answer used", answer)
		})
		// Calls go on from the cache, well past its TTL.
		_, before := l.count(time.Time{})
		l.waitForSuccesses(t, 50)
		assertNoFailures(t, l.stop(), before+50)
		if ids := reg.MustIDs(t, "hello"); !slices.Contains(ids, hello.ID) {
			t.Errorf("hello %s no longer listed (%v): only the gateway's account was revoked", hello.ID, ids)
		}
	})
}

// TestRegistryTLS: with the registry served over TLS and asking for client
// certificates, the services register, discover and answer with
// --registry_tls_*; without them, or with a certificate from another CA,
// a service does not start and registers nothing.
func TestRegistryTLS(t *testing.T) {
	skipIfShort(t)
	dir := t.TempDir()
	if _, err := devcerts.Write(dir, []string{"user", "hello", "gateway"}, "registry", 0o600); err != nil {
		t.Fatal(err)
	}
	other := devcerts.MustWrite(t, "user")
	file := func(name string) string { return filepath.Join(dir, name) }
	for _, name := range []string{"consul", "etcd"} {
		t.Run(name, func(t *testing.T) {
			reg := stack.MustStartRegistry(t, name, stack.TLS(file("ca.crt"), file("registry.crt"), file("registry.key")))
			testRegistryTLS(t, reg, dir, other)
		})
	}
}

func testRegistryTLS(t *testing.T, reg *stack.Registry, dir, other string) {
	file := func(name string) string { return filepath.Join(dir, name) }
	creds := func(dir, service string) []string {
		return []string{"--registry_tls_ca", filepath.Join(dir, "ca.crt"),
			"--registry_tls_cert", filepath.Join(dir, service+".crt"), "--registry_tls_key", filepath.Join(dir, service+".key")}
	}

	t.Run("refused", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			args []string
		}{
			{"plaintext", nil},
			{"no client certificate", []string{"--registry_tls_ca", file("ca.crt")}},
			{"a client certificate from another CA", append(creds(other, "user")[2:], "--registry_tls_ca", file("ca.crt"))},
			{"another CA trusted", append(creds(dir, "user")[2:], "--registry_tls_ca", filepath.Join(other, "ca.crt"))},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, stderr, err := runService(t, "user", nil, append([]string{"--registry", reg.Name, "--registry_address", reg.Addr,
					"--server_address", "127.0.0.1:0", "--registry_attempts", "1", "--registry_timeout", "2s"}, tt.args...)...)
				if code := exitCode(t, err); code == 0 || strings.Count(stderr, "\n") != 1 {
					t.Errorf("exit status %d, stderr %q: want non-zero and one line", code, stderr)
				}
				if is := reg.MustInstances(t, "user"); len(is) != 0 {
					t.Errorf("registry lists %v, want nothing registered", is)
				}
			})
		}
	})

	t.Run("served", func(t *testing.T) {
		user := mustStartService(t, reg, "user", "user", creds(dir, "user")...)
		hello := mustStartService(t, reg, "hello", "hello", creds(dir, "hello")...)
		url := gatewayURL(t, mustStartService(t, reg, "gateway", "gateway", append(creds(dir, "gateway"), "--http_address", "127.0.0.1:0")...))
		var rsp struct{ Instances map[string]string }
		poll.Eventually(t, 20*time.Second, func() error {
			if code := get(t, url+"/hello?user_id=ada", &rsp); code != http.StatusOK {
				return fmt.Errorf("GET /hello: %d", code)
			}
			return nil
		})
		if rsp.Instances["hello"] != hello.ID || rsp.Instances["user"] != user.ID {
			t.Errorf("answered by %v, want hello %s and user %s", rsp.Instances, hello.ID, user.ID)
		}
	})
}
