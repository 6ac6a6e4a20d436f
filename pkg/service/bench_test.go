package service

import (
	"testing"
)

// BenchmarkServiceCall is one call through a Service's client to a Service's
// server in one process, with everything a service runs by default: the
// client's wrappers (pkg/wrappers), metrics and tracing (no collector:
// spans are no-ops) on both sides, and the server's handler wrappers.
// allocs/op counts the whole process, client and server.
func BenchmarkServiceCall(b *testing.B) {
	svc := mustNew(b, testConfig())
	mustHandle(b, svc, &Echo{})
	start(b, svc)
	mustRegistered(b, svc)
	for range 10 { // connect, fill the caches
		if err := callEcho(svc); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := callEcho(svc); err != nil {
			b.Fatal(err)
		}
	}
}
