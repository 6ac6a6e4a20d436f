// Package regauth sets up the registry accounts of a locked-down stack: in
// Consul (ACLs on, default deny) one policy and one token per service, and
// read access to the catalogue for requests without a token, which DNS
// queries are (ConsulDNSRules); in etcd (auth on) a root user and one role
// and user per service. Each service may register only under its own name
// and read the whole catalogue. The compose stack's init program and the
// tests use it; a service never does.
//
// Both functions are idempotent: run again with the same accounts, they
// leave the same policies, tokens, roles and users (passwords are set
// again), so an init program can run on every start.
package regauth

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Account is what one service registers with.
type Account struct {
	Name         string // the service's registry name, e.g. "user"
	ConsulToken  string // the SecretID of its Consul token: a UUID
	EtcdUser     string // its etcd user; empty means Name
	EtcdPassword string
}

// EtcdPrefix is where go-micro's etcd registry (and pkg/discovery) keeps
// instances: one key per instance, EtcdPrefix + "<service>/<node id>".
const EtcdPrefix = "/micro/registry/"

// ConsulRules is the policy of service name: write its own registrations
// (and so their TTL checks), read every service and node, which lookups
// and watches need.
func ConsulRules(name string) string {
	return fmt.Sprintf("service %q {\n  policy = \"write\"\n}\nservice_prefix \"\" {\n  policy = \"read\"\n}\nnode_prefix \"\" {\n  policy = \"read\"\n}\n", name)
}

// ConsulPolicyName names the policy Consul creates for service name.
func ConsulPolicyName(name string) string { return "service-" + name }

// ConsulDNSRules is the policy of Consul's anonymous token, which every
// request without a token runs with: DNS queries (Consul 1.13 has no
// token of DNS's own), and so HTTP API calls without a token too. DNS
// answers <service>.service.consul from services and nodes it may read:
// all of them, read only. Nothing else: no registering, no KV, no ACLs.
const ConsulDNSRules = "service_prefix \"\" {\n  policy = \"read\"\n}\nnode_prefix \"\" {\n  policy = \"read\"\n}\n"

// ConsulDNSPolicy names the policy Consul gives its anonymous token.
const ConsulDNSPolicy = "dns-read"

// consulAnonymous is the AccessorID of Consul's anonymous token.
const consulAnonymous = "00000000-0000-0000-0000-000000000002"

func checkAccounts(accounts []Account) error {
	seen := map[string]bool{}
	for _, a := range accounts {
		if a.Name == "" || strings.ContainsAny(a.Name, "/\" \t\n") {
			return fmt.Errorf("account %q: a service name without '/', quotes or spaces", a.Name)
		}
		if seen[a.Name] {
			return fmt.Errorf("account %q: listed twice", a.Name)
		}
		seen[a.Name] = true
	}
	return nil
}

// Consul gives each account a policy (ConsulRules) and a token whose
// SecretID is the account's ConsulToken, and the anonymous token the policy
// ConsulDNSPolicy, through the Consul agent at addr (host:port) with the
// management token. tlsConf nil means plain HTTP.
func Consul(ctx context.Context, addr, managementToken string, tlsConf *tls.Config, accounts []Account) error {
	if err := checkAccounts(accounts); err != nil {
		return err
	}
	scheme, transport := "http", &http.Transport{}
	if tlsConf != nil {
		scheme, transport.TLSClientConfig = "https", tlsConf
	}
	defer transport.CloseIdleConnections()
	// The whole config is given, so that nothing comes from CONSUL_*
	// variables but the token, which is set on every call below.
	client, err := api.NewClient(&api.Config{Address: addr, Scheme: scheme, HttpClient: &http.Client{Transport: transport, Timeout: 10 * time.Second}})
	if err != nil {
		return fmt.Errorf("consul %s: %w", addr, err)
	}
	acl := client.ACL()
	w := (&api.WriteOptions{Token: managementToken}).WithContext(ctx)
	q := (&api.QueryOptions{Token: managementToken}).WithContext(ctx)
	for _, a := range accounts {
		if a.ConsulToken == "" {
			return fmt.Errorf("account %s: no Consul token", a.Name)
		}
		policy := &api.ACLPolicy{Name: ConsulPolicyName(a.Name), Description: "registers " + a.Name + ", reads the catalogue", Rules: ConsulRules(a.Name)}
		if err := consulPolicy(acl, policy, q, w); err != nil {
			return err
		}

		token := &api.ACLToken{SecretID: a.ConsulToken, Description: "service " + a.Name, Policies: []*api.ACLTokenPolicyLink{{Name: policy.Name}}}
		// A token is found by its AccessorID; ask the token itself for it.
		self, _, err := acl.TokenReadSelf((&api.QueryOptions{Token: a.ConsulToken}).WithContext(ctx))
		switch {
		case err == nil:
			token.AccessorID = self.AccessorID
			_, _, err = acl.TokenUpdate(token, w)
		case isNotFound(err):
			_, _, err = acl.TokenCreate(token, w)
		}
		if err != nil {
			return fmt.Errorf("consul: token of %s: %w", a.Name, err)
		}
	}

	// DNS: the anonymous token may read the catalogue.
	dns := &api.ACLPolicy{Name: ConsulDNSPolicy, Description: "DNS queries and requests without a token: read services and nodes", Rules: ConsulDNSRules}
	if err := consulPolicy(acl, dns, q, w); err != nil {
		return err
	}
	anonymous, _, err := acl.TokenRead(consulAnonymous, q)
	if err != nil {
		return fmt.Errorf("consul: read the anonymous token: %w", err)
	}
	if !slices.ContainsFunc(anonymous.Policies, func(p *api.ACLTokenPolicyLink) bool { return p.Name == ConsulDNSPolicy }) {
		anonymous.Policies = append(anonymous.Policies, &api.ACLTokenPolicyLink{Name: ConsulDNSPolicy})
		if _, _, err := acl.TokenUpdate(anonymous, w); err != nil {
			return fmt.Errorf("consul: policy %s for the anonymous token: %w", ConsulDNSPolicy, err)
		}
	}
	return nil
}

// consulPolicy creates policy, or updates the one of the same name.
func consulPolicy(acl *api.ACL, policy *api.ACLPolicy, q *api.QueryOptions, w *api.WriteOptions) error {
	old, _, err := acl.PolicyReadByName(policy.Name, q)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("consul: read policy %s: %w", policy.Name, err)
	}
	if old == nil {
		_, _, err = acl.PolicyCreate(policy, w)
	} else {
		policy.ID = old.ID
		_, _, err = acl.PolicyUpdate(policy, w)
	}
	if err != nil {
		return fmt.Errorf("consul: policy %s: %w", policy.Name, err)
	}
	return nil
}

// isNotFound reports Consul's answer for a policy or token it does not
// have: 404 for a policy name, 403 "ACL not found" for a token.
func isNotFound(err error) bool {
	s := err.Error()
	return strings.Contains(s, "404") || strings.Contains(s, "ACL not found")
}

// Etcd creates the root user (role root) with rootPassword and, for each
// account, a role of the same name that may read and write the keys under
// EtcdPrefix + name + "/" and read everything under EtcdPrefix, and a user
// with that role and the account's password. Then it enables
// authentication. tlsConf nil means plain gRPC.
func Etcd(ctx context.Context, endpoints []string, rootPassword string, tlsConf *tls.Config, accounts []Account) error {
	if err := checkAccounts(accounts); err != nil {
		return err
	}
	if rootPassword == "" {
		return errors.New("etcd: empty root password")
	}
	// As root from the start: the client authenticates only once auth is
	// on, so the same code runs before and after the first enable.
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: tlsConf, Username: "root", Password: rootPassword, DialTimeout: 10 * time.Second, Context: ctx})
	if err != nil {
		return fmt.Errorf("etcd %s as root: %w", strings.Join(endpoints, ","), err)
	}
	defer cli.Close()
	if err := etcdUser(ctx, cli, "root", rootPassword, "root"); err != nil {
		return err
	}
	for _, a := range accounts {
		if a.EtcdPassword == "" {
			return fmt.Errorf("account %s: no etcd password", a.Name)
		}
		user := a.EtcdUser
		if user == "" {
			user = a.Name
		}
		if user == "root" {
			return fmt.Errorf("account %s: user root is the administrator, not a service", a.Name)
		}
		if _, err := cli.RoleAdd(ctx, a.Name); err != nil && !errors.Is(err, rpctypes.ErrRoleAlreadyExist) {
			return fmt.Errorf("etcd: role %s: %w", a.Name, err)
		}
		own := EtcdPrefix + a.Name + "/"
		for _, p := range []struct {
			key  string
			perm clientv3.PermissionType
		}{{own, clientv3.PermissionType(clientv3.PermReadWrite)}, {EtcdPrefix, clientv3.PermissionType(clientv3.PermRead)}} {
			if _, err := cli.RoleGrantPermission(ctx, a.Name, p.key, clientv3.GetPrefixRangeEnd(p.key), p.perm); err != nil {
				return fmt.Errorf("etcd: role %s on %s: %w", a.Name, p.key, err)
			}
		}
		if err := etcdUser(ctx, cli, user, a.EtcdPassword, a.Name); err != nil {
			return err
		}
	}
	if _, err := cli.AuthEnable(ctx); err != nil {
		return fmt.Errorf("etcd: auth enable: %w", err)
	}
	return nil
}

// etcdUser creates user with password and role, or sets the password and
// grants the role of a user that exists.
func etcdUser(ctx context.Context, cli *clientv3.Client, user, password, role string) error {
	if _, err := cli.UserAdd(ctx, user, password); errors.Is(err, rpctypes.ErrUserAlreadyExist) {
		_, err = cli.UserChangePassword(ctx, user, password)
		if err != nil {
			return fmt.Errorf("etcd: password of %s: %w", user, err)
		}
	} else if err != nil {
		return fmt.Errorf("etcd: user %s: %w", user, err)
	}
	if _, err := cli.UserGrantRole(ctx, user, role); err != nil {
		return fmt.Errorf("etcd: grant %s to %s: %w", role, user, err)
	}
	return nil
}
