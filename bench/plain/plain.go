// Package plain is what the bench programs (bench/chaos, bench/load)
// measure the starter against: the same user, hello and gateway written
// with go-micro v4.11.0 as its documentation writes them, and nothing of
// the starter's (no wrappers, no drain, the registry plugins as they are).
// They use the gRPC server and client plugins, the transport the starter
// uses, so that a difference is what the starter adds, not the transport.
// service.Init parses go-micro's own flags (--registry, --registry_address,
// --server_address) and sets its defaults: register TTL 60 s, interval
// 30 s, 5 retries. No service imports this package.
//
// Build the three binaries into bin/plain/ (make chaos and make bench do):
//
//	go build -o bin/plain/ ./bench/plain/...
package plain

import (
	"fmt"

	grpcclient "github.com/go-micro/plugins/v4/client/grpc"
	"github.com/go-micro/plugins/v4/registry/consul"
	"github.com/go-micro/plugins/v4/registry/etcd"
	grpcserver "github.com/go-micro/plugins/v4/server/grpc"
	"go-micro.dev/v4"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"
	"go-micro.dev/v4/util/cmd"
)

// NewService is micro.NewService with the gRPC plugins; the caller calls
// Init (which reads the flags) and Run.
func NewService(name string, opts ...micro.Option) micro.Service {
	// Upstream's registry plugins add themselves to go-micro's command line
	// (--registry) in their init; the copies this module builds with
	// (third_party/go-micro-plugins) do not, so a plain service does it here,
	// as their init would have.
	cmd.DefaultRegistries["consul"] = consul.NewRegistry
	cmd.DefaultRegistries["etcd"] = etcd.NewRegistry
	return micro.NewService(append([]micro.Option{
		// Server and client first: the options after them configure these.
		micro.Server(grpcserver.NewServer()),
		micro.Client(grpcclient.NewClient()),
		// No pub/sub here; go-micro's default HTTP broker would listen on
		// every interface.
		micro.Broker(broker.NewMemoryBroker()),
		micro.Name(name),
	}, opts...)...)
}

// NewClient is the client a plain service calls others with, for a caller
// in a bench program's own process (which cannot call service.Init: it
// would parse the bench program's flags).
func NewClient(registryName, address string) (client.Client, error) {
	var reg registry.Registry
	switch registryName {
	case "consul":
		reg = consul.NewRegistry(registry.Addrs(address))
	case "etcd":
		reg = etcd.NewRegistry(registry.Addrs(address))
	default:
		return nil, fmt.Errorf("plain client: unknown registry %q", registryName)
	}
	return Client(reg), nil
}

// Client is go-micro's gRPC client with go-micro's defaults on reg: its
// selector (random per attempt, 1-minute cache), retry policy (timeouts
// only), retries and timeouts; no breaker.
func Client(reg registry.Registry) client.Client {
	return grpcclient.NewClient(
		client.Registry(reg),
		client.Selector(selector.NewSelector(selector.Registry(reg))),
		client.Broker(broker.NewMemoryBroker()),
	)
}
