package discovery

import (
	"runtime"
	"testing"
)

// Each etcd client (the plugin's and our registration's) builds its logger
// from etcdLogConfig and holds it for the process's life. zap's production
// sampler holds 448 KiB of counters per logger whether it ever logs or
// not: a third of an idle user instance's live heap, doubled by the
// garbage collector's headroom.
func TestEtcdLoggerHoldsLittle(t *testing.T) {
	const loggers, bound = 8, 32 << 10 // bytes per logger: room for other goroutines' allocations
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	held := make([]any, 0, loggers)
	for range loggers {
		lg, err := etcdLogConfig().Build()
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, lg)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(held)
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / loggers
	if per > bound {
		t.Errorf("an etcd client's logger holds %d bytes of heap, want <= %d", per, bound)
	}
	t.Logf("%d bytes held per logger", per)
}
