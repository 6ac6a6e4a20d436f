// Package integration runs the built services together against real Consul
// and etcd servers: registration, load balancing through the gateway,
// graceful stop and crash recovery, each against both registries.
//
// It holds only tests. They need the consul and etcd binaries on PATH:
// `make test` builds them into bin/ and puts bin/ first on PATH. `go test
// -short` (make test-unit) skips them.
package integration
