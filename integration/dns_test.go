package integration

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/internal/regauth"
	"github.com/example/micro-starter/internal/stack"
)

// TestConsulDNS: Consul answers user.service.consul for clients that know
// nothing of go-micro, over UDP and TCP: an A record with the address of
// each instance whose checks pass and an SRV record with its address and
// port; a hung instance, critical but still in the catalogue, in neither.
// With ACLs on and default deny as well, where DNS queries carry no token
// and so need the anonymous token's read access (internal/regauth).
// etcd has no DNS.
func TestConsulDNS(t *testing.T) {
	skipIfShort(t)
	for _, tc := range []struct {
		name   string
		locked bool
	}{
		{"open", false},
		{"ACLs default deny", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var secret string // the management token, to read the catalogue
			var opts []stack.Option
			var args []string // each user instance's
			if tc.locked {
				secret = uuid(t)
				user := regauth.Account{Name: "user", ConsulToken: uuid(t)}
				opts = append(opts, stack.Auth(secret, user))
				args = append(args, "--registry_token", user.ConsulToken)
			}
			reg := stack.MustStartRegistry(t, "consul", opts...)

			// Each instance on a loopback address of its own, none of them
			// the Consul node's (127.0.0.1): an A record then shows the
			// address the instance registered, not the node's.
			ports := stack.MustFreePorts(t, 3)
			var addrs []string
			var nodes []*stack.Node
			for i, port := range ports {
				addr := "127.0.0." + strconv.Itoa(i+2) + ":" + strconv.Itoa(port)
				addrs = append(addrs, addr)
				nodes = append(nodes, mustStartService(t, reg, "user", "user-"+strconv.Itoa(i+1), slices.Concat(args, []string{"--server_address", addr})...))
			}
			all := stack.DNSAnswer{A: []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}, SRV: addrs}
			for _, network := range []string{"udp", "tcp"} {
				resolvesTo(t, reg.DNS, network, all)
			}

			// A hung instance: its check goes critical, and Consul keeps it
			// in the catalogue until "deregister critical service after".
			hung := nodes[2]
			hung.MustSignal(t, syscall.SIGSTOP) // Stop, at cleanup, resumes it first
			poll.Eventually(t, registerTTL+5*time.Second, func() error {
				if status := consulStatus(t, reg, secret, hung.ID); status != api.HealthCritical {
					return fmt.Errorf("%s (%s) is %q, want critical", hung.Name, hung.ID, status)
				}
				return nil
			})
			passing := stack.DNSAnswer{A: []string{"127.0.0.2", "127.0.0.3"}, SRV: addrs[:2]}
			for _, network := range []string{"udp", "tcp"} {
				resolvesTo(t, reg.DNS, network, passing)
			}
		})
	}
}

// resolvesTo checks that the DNS server at addr soon answers
// user.service.consul with want, over network.
func resolvesTo(t *testing.T, addr, network string, want stack.DNSAnswer) {
	t.Helper()
	r := stack.DNSResolver(addr, network)
	var got stack.DNSAnswer
	err := poll.Until(5*time.Second, 50*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var err error
		if got, err = stack.LookupService(ctx, r, "user.service.consul"); err != nil {
			return err
		}
		if !reflect.DeepEqual(got, want) {
			return fmt.Errorf("answered %+v", got)
		}
		return nil
	})
	if err != nil {
		t.Errorf("DNS over %s, user.service.consul: %v; want %+v", network, err, want)
	}
}

// consulStatus is the aggregated status of the checks of instance id of
// user in Consul's catalogue, critical ones included; "" if it is not
// there. token is the management token, or "" without ACLs.
func consulStatus(tb testing.TB, reg *stack.Registry, token, id string) string {
	tb.Helper()
	c, err := api.NewClient(&api.Config{Address: reg.Addr, Scheme: "http", Token: token, HttpClient: &http.Client{Timeout: 5 * time.Second}})
	if err != nil {
		tb.Fatal(err)
	}
	entries, _, err := c.Health().Service("user", "", false, nil)
	if err != nil {
		tb.Fatal(err)
	}
	i := slices.IndexFunc(entries, func(e *api.ServiceEntry) bool { return e.Service.ID == id })
	if i < 0 {
		return ""
	}
	return entries[i].Checks.AggregatedStatus()
}
