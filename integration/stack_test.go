package integration

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/internal/stack"
)

// mustStartService starts one instance of service against reg and returns
// once the registry lists it.
func mustStartService(tb testing.TB, reg *stack.Registry, service, name string, args ...string) *stack.Node {
	tb.Helper()
	return reg.MustStartNode(tb, name, service, filepath.Join(binDir, service), args...)
}

// system is the whole system: user instances, one hello, one gateway.
type system struct {
	users   []*stack.Node
	hello   *stack.Node
	gateway *stack.Node
	url     string // the gateway's HTTP API
}

// mustStartSystem starts the system against reg, each service with args,
// and returns once the gateway reports ready.
func mustStartSystem(tb testing.TB, reg *stack.Registry, users int, args ...string) *system {
	tb.Helper()
	httpAddr := stack.MustFreeAddr(tb)
	s := &system{url: "http://" + httpAddr}
	// One at a time, so that each new registry entry belongs to the instance
	// just started.
	for i := range users {
		s.users = append(s.users, mustStartService(tb, reg, "user", "user-"+strconv.Itoa(i+1), args...))
	}
	s.hello = mustStartService(tb, reg, "hello", "hello", args...)
	s.gateway = mustStartService(tb, reg, "gateway", "gateway", append(args, "--http_address", httpAddr)...)
	// Each instance drains for 2s on SIGTERM: stop them all at once rather
	// than one after another. Runs before each process's own cleanup.
	tb.Cleanup(func() {
		for _, n := range append([]*stack.Node{s.gateway, s.hello}, s.users...) {
			n.MustSignal(tb, syscall.SIGTERM)
		}
	})
	poll.Eventually(tb, 20*time.Second, func() error {
		if code := get(tb, s.url+"/readyz", nil); code != http.StatusOK {
			return fmt.Errorf("GET /readyz: %d", code)
		}
		return nil
	})
	return s
}

// httpClient bounds each request the tests make to the gateway; the
// gateway's own calls time out after 5s.
var httpClient = &http.Client{Timeout: 10 * time.Second}

// get fetches url, decodes a JSON body into v unless v is nil, and returns
// the status code.
func get(tb testing.TB, url string, v any) int {
	tb.Helper()
	return stack.MustGet(tb, httpClient, url, v)
}

// load is a steady stream of GET requests from a few clients, as a busy
// caller would send, that counts every failure.
type load struct {
	ok       atomic.Int64
	mu       sync.Mutex
	failures []string
	stopOnce sync.Once
	quit     chan struct{}
	wg       sync.WaitGroup
}

// startLoad sends GET url from workers goroutines, each paced to 50
// requests a second so that Consul and etcd keep their share of the CPU,
// until stop is called or the test ends.
func startLoad(tb testing.TB, url string, workers int) *load {
	l := &load{quit: make(chan struct{})}
	for range workers {
		l.wg.Add(1)
		go l.run(url)
	}
	tb.Cleanup(func() { l.stop() })
	return l
}

func (l *load) run(url string) {
	defer l.wg.Done()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-l.quit:
			return
		case <-tick.C:
		}
		start := time.Now()
		if err := stack.GetJSON(httpClient, url, nil); err != nil {
			l.mu.Lock()
			l.failures = append(l.failures, fmt.Sprintf("sent %s, failed after %v: %v",
				start.Format("15:04:05.000"), time.Since(start).Round(time.Millisecond), err))
			l.mu.Unlock()
			continue
		}
		l.ok.Add(1)
	}
}

// waitForSuccesses returns once n more requests have succeeded.
func (l *load) waitForSuccesses(tb testing.TB, n int64) {
	tb.Helper()
	want := l.ok.Load() + n
	poll.Eventually(tb, 30*time.Second, func() error {
		if got := l.ok.Load(); got < want {
			l.mu.Lock()
			defer l.mu.Unlock()
			return fmt.Errorf("%d of %d successful requests (%d failed)", got, want, len(l.failures))
		}
		return nil
	})
}

// stop ends the requests and returns the number that succeeded and a line
// for each that failed.
func (l *load) stop() (ok int64, failures []string) {
	l.stopOnce.Do(func() { close(l.quit) })
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok.Load(), l.failures
}
