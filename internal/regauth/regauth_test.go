package regauth_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/example/micro-starter/internal/regauth"
	"github.com/example/micro-starter/internal/stack"
)

const secret = "6f1c6a52-52c4-4a34-9a51-2a8e4a0f6d11"

var accounts = []regauth.Account{
	{Name: "user", ConsulToken: "0d1f5f6e-6f0b-4c55-8a4b-7e5f35d2b6a1", EtcdPassword: "user-pw"},
	{Name: "hello", ConsulToken: "9a3e1c2b-3c7d-4f1e-b1a2-5d6c7e8f9a0b", EtcdUser: "hello-svc", EtcdPassword: "hello-pw"},
}

// TestConsul runs Consul through stack.Auth (which calls regauth.Consul),
// then regauth.Consul again, and checks what each token may do through the
// agent API the registry plugin uses.
func TestConsul(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Consul")
	}
	reg := stack.MustStartRegistry(t, "consul", stack.Auth(secret, accounts...))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := regauth.Consul(ctx, reg.Addr, secret, nil, accounts); err != nil {
		t.Fatalf("second run: %v", err)
	}

	as := func(token string) *api.Agent {
		c, err := api.NewClient(&api.Config{Address: reg.Addr, Scheme: "http", Token: token, HttpClient: &http.Client{Timeout: 5 * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		return c.Agent()
	}
	register := func(token, name string) error {
		return as(token).ServiceRegister(&api.AgentServiceRegistration{
			ID: name + "-1", Name: name, Address: "127.0.0.1", Port: 1,
			Check: &api.AgentServiceCheck{TTL: "10s", DeregisterCriticalServiceAfter: "1m"},
		})
	}
	userToken, helloToken := accounts[0].ConsulToken, accounts[1].ConsulToken

	tests := []struct {
		name, token, service string
		wantErr              string // "" means allowed
	}{
		{"own name", userToken, "user", ""},
		{"own name, again", userToken, "user", ""},
		{"other's name", userToken, "hello", "Permission denied"},
		{"hello's own", helloToken, "hello", ""},
		{"no token", "", "user", "Permission denied"},
		{"unknown token", "11111111-2222-3333-4444-555555555555", "user", "ACL not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := register(tt.token, tt.service)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("register %s: %v, want allowed", tt.service, err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("register %s: %v, want %q", tt.service, err, tt.wantErr)
			}
		})
	}

	// The TTL check update that keeps an instance listed, and the lookups.
	if err := as(userToken).PassTTL("service:user-1", ""); err != nil {
		t.Errorf("user passes its own TTL check: %v", err)
	}
	if err := as(userToken).PassTTL("service:hello-1", ""); err == nil {
		t.Errorf("user passed hello's TTL check, want refused")
	}
	c, _ := api.NewClient(&api.Config{Address: reg.Addr, Scheme: "http", Token: userToken, HttpClient: &http.Client{Timeout: 5 * time.Second}})
	entries, _, err := c.Health().Service("hello", "", false, nil)
	if err != nil || len(entries) != 1 {
		t.Errorf("user looks up hello: %d entries, %v; want 1", len(entries), err)
	}
	services, _, err := c.Catalog().Services(nil)
	if err != nil || len(services) < 2 {
		t.Errorf("user lists services: %v, %v; want user and hello", services, err)
	}
	if err := as(userToken).ServiceDeregister("hello-1"); err == nil {
		t.Errorf("user deregistered hello, want refused")
	}
	if err := as(userToken).ServiceDeregister("user-1"); err != nil {
		t.Errorf("user deregisters itself: %v", err)
	}

	// Without a token (DNS queries, and HTTP calls that carry none): the
	// catalogue may be read, and nothing else.
	anonymous, _ := api.NewClient(&api.Config{Address: reg.Addr, Scheme: "http", HttpClient: &http.Client{Timeout: 5 * time.Second}})
	if entries, _, err := anonymous.Health().Service("hello", "", false, nil); err != nil || len(entries) != 1 {
		t.Errorf("no token, hello's entries: %d, %v; want 1 (what DNS answers from)", len(entries), err)
	}
	if _, err := anonymous.KV().Put(&api.KVPair{Key: "k", Value: []byte("v")}, nil); err == nil || !strings.Contains(err.Error(), "Permission denied") {
		t.Errorf("no token, KV write: %v; want Permission denied", err)
	}
	if _, _, err := anonymous.KV().Get("k", nil); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("no token, KV read: %v; want 403", err)
	}
	if _, _, err := anonymous.ACL().PolicyList(nil); err == nil || !strings.Contains(err.Error(), "Permission denied") {
		t.Errorf("no token, ACL policies: %v; want Permission denied", err)
	}
	// Run twice, the anonymous token has the policy once.
	mgmt, _ := api.NewClient(&api.Config{Address: reg.Addr, Scheme: "http", Token: secret, HttpClient: &http.Client{Timeout: 5 * time.Second}})
	tok, _, err := mgmt.ACL().TokenRead("00000000-0000-0000-0000-000000000002", nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range tok.Policies {
		names = append(names, p.Name)
	}
	if len(names) != 1 || names[0] != regauth.ConsulDNSPolicy {
		t.Errorf("anonymous token's policies %v, want [%s]", names, regauth.ConsulDNSPolicy)
	}
}

// TestEtcd runs etcd through stack.Auth (which calls regauth.Etcd), then
// regauth.Etcd again, and checks what each user may do with the keys the
// registry uses.
func TestEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	reg := stack.MustStartRegistry(t, "etcd", stack.Auth(secret, accounts...))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := regauth.Etcd(ctx, []string{reg.Addr}, secret, nil, accounts); err != nil {
		t.Fatalf("second run: %v", err)
	}

	connect := func(user, password string) (*clientv3.Client, error) {
		return clientv3.New(clientv3.Config{Endpoints: []string{reg.Addr}, Username: user, Password: password, DialTimeout: 5 * time.Second})
	}
	user, err := connect("user", "user-pw")
	if err != nil {
		t.Fatalf("user logs in: %v", err)
	}
	defer user.Close()
	hello, err := connect("hello-svc", "hello-pw")
	if err != nil {
		t.Fatalf("hello-svc logs in: %v", err)
	}
	defer hello.Close()

	put := func(c *clientv3.Client, key string) error {
		lease, err := c.Grant(ctx, 10)
		if err != nil {
			return err
		}
		_, err = c.Put(ctx, key, "{}", clientv3.WithLease(lease.ID))
		return err
	}
	tests := []struct {
		name    string
		c       *clientv3.Client
		key     string
		wantErr string
	}{
		{"own key", user, "/micro/registry/user/user-1", ""},
		{"other's key", user, "/micro/registry/hello/hello-1", "permission denied"},
		{"a name that starts with its own", user, "/micro/registry/username/x", "permission denied"},
		{"outside the prefix", user, "/other", "permission denied"},
		{"hello's own", hello, "/micro/registry/hello/hello-1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := put(tt.c, tt.key)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("put %s: %v, want allowed", tt.key, err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("put %s: %v, want %q", tt.key, err, tt.wantErr)
			}
		})
	}

	rsp, err := user.Get(ctx, regauth.EtcdPrefix, clientv3.WithPrefix())
	if err != nil || len(rsp.Kvs) != 2 {
		t.Errorf("user reads the registry: %v; want user's and hello's keys", err)
	}
	if _, err := user.Delete(ctx, "/micro/registry/hello/hello-1"); err == nil {
		t.Errorf("user deleted hello's key, want refused")
	}
	if _, err := connect("user", "wrong"); err == nil || !strings.Contains(err.Error(), "authentication failed") {
		t.Errorf("wrong password: %v, want authentication failed", err)
	}
	anon, err := clientv3.New(clientv3.Config{Endpoints: []string{reg.Addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, err := anon.Get(ctx, regauth.EtcdPrefix, clientv3.WithPrefix()); err == nil {
		t.Errorf("no user reads the registry, want refused")
	}
}
