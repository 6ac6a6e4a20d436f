package wrappers

import (
	"context"
	"sync/atomic"
	"testing"

	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
)

// A handler's context holds the metadata it was called with, in gRPC's
// lower-case keys, and its calls send it on: each key reaches the callee
// once, and sending a lower-case key costs no allocation of ours (go-micro's
// metadata.FromContext copies the map and re-cases every key, which the
// client then lower-cased back: two allocations per key per call).
func TestMetadataSentOnceReadInPlace(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	service := serviceName(t)
	var got atomic.Pointer[metadata.Metadata]
	mustServe(t, reg, service, "a", server.WrapHandler(func(h server.HandlerFunc) server.HandlerFunc {
		return func(ctx context.Context, req server.Request, rsp interface{}) error {
			md, _ := metadata.FromContext(ctx)
			got.Store(&md)
			return h(ctx, req, rsp)
		}
	}))
	c := newBase(reg, DefaultConfig(), NewOutliers(outlierFailures, outlierCooldown))
	sent := metadata.Metadata{"x-request-id": "r1", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
		"x-d": "4", "x-a": "1", "x-b": "2", "x-c": "3"}
	bare, withMD := context.Background(), metadata.NewContext(context.Background(), sent)
	for range 20 { // connect and fill the caches
		if _, err := call(withMD, c, service); err != nil {
			t.Fatal(err)
		}
	}
	md := *got.Load()
	for k, v := range sent {
		if w, ok := md.Get(k); !ok || w != v {
			t.Errorf("callee got %s = %q, %v; want %q", k, w, ok, v)
		}
	}
	perCall := func(ctx context.Context) float64 {
		return testing.AllocsPerRun(300, func() {
			if _, err := call(ctx, c, service); err != nil {
				t.Fatal(err)
			}
		})
	}
	perKey := (perCall(withMD) - perCall(bare)) / float64(len(sent))
	t.Logf("%.1f allocations per metadata key per call (client and server)", perKey)
	if perKey > maxAllocsPerKey {
		t.Errorf("%.1f allocations per metadata key per call, want at most %v", perKey, maxAllocsPerKey)
	}
}

// What a key costs without our copy (4.5-5.2, with it 7.3-7.5): gRPC's
// header strings on both sides and the callee's go-micro metadata entry.
const maxAllocsPerKey = 6
