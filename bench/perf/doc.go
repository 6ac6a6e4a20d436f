// Package perf holds the Go benchmarks behind docs/performance.md: the cost
// of the client wrapper chain against go-micro's bare gRPC client, and of a
// discovery lookup served from the selector's cache against one served by
// Consul or etcd. `make bench` runs them with -count and benchstat; `make
// bench-smoke` runs each once so that they cannot rot. The load program for
// the gateway is bench/load.
package perf
