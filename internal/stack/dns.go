package stack

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
)

// DNSResolver is Go's own resolver sending every query to the DNS server
// at addr (host:port), over network: "udp" (falling back to TCP for a
// truncated answer, as any resolver does) or "tcp" only. Nothing of the
// host's resolver configuration is used but /etc/hosts.
func DNSResolver(addr, network string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, asked, _ string) (net.Conn, error) {
		if network == "tcp" {
			// A stream connection: the resolver then frames its queries
			// as DNS over TCP.
			asked = "tcp"
		}
		var d net.Dialer
		return d.DialContext(ctx, asked, addr)
	}}
}

// DNSAnswer is what DNS answers for a service: the addresses of its A
// records, and host:port for each of its SRV records, the target resolved
// through the same server. Both sorted.
type DNSAnswer struct {
	A   []string
	SRV []string
}

// LookupService asks r for the A and SRV records of name, such as
// user.service.consul (a final dot is added: no search domain applies).
func LookupService(ctx context.Context, r *net.Resolver, name string) (DNSAnswer, error) {
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	var a DNSAnswer
	var err error
	if a.A, err = r.LookupHost(ctx, name); err != nil {
		return a, fmt.Errorf("A %s: %w", name, err)
	}
	_, srvs, err := r.LookupSRV(ctx, "", "", name)
	if err != nil {
		return a, fmt.Errorf("SRV %s: %w", name, err)
	}
	for _, s := range srvs {
		hosts, err := r.LookupHost(ctx, s.Target)
		if err != nil {
			return a, fmt.Errorf("SRV %s: target %s: %w", name, s.Target, err)
		}
		for _, h := range hosts {
			a.SRV = append(a.SRV, net.JoinHostPort(h, strconv.Itoa(int(s.Port))))
		}
	}
	slices.Sort(a.A)
	slices.Sort(a.SRV)
	return a, nil
}
