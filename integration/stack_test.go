package integration

import (
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
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

// gatewayURL is the HTTP API of a gateway started with --http_address
// 127.0.0.1:0: the address it logged it listens on.
func gatewayURL(tb testing.TB, gateway *stack.Node) string {
	tb.Helper()
	return "http://" + gateway.MustLoggedAddr(tb, "http listening")
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
	s := &system{}
	// One at a time, so that each new registry entry belongs to the instance
	// just started.
	for i := range users {
		s.users = append(s.users, mustStartService(tb, reg, "user", "user-"+strconv.Itoa(i+1), args...))
	}
	s.hello = mustStartService(tb, reg, "hello", "hello", args...)
	s.gateway = mustStartService(tb, reg, "gateway", "gateway", append(args, "--http_address", "127.0.0.1:0")...)
	s.url = gatewayURL(tb, s.gateway)
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
// caller would send, that keeps when each request was sent, how long it
// took and how it ended.
type load struct {
	mu       sync.Mutex
	results  []result
	stopOnce sync.Once
	quit     chan struct{}
	wg       sync.WaitGroup
}

type result struct {
	at   time.Time
	took time.Duration
	err  error
}

func (r result) String() string {
	return fmt.Sprintf("sent %s, failed after %v: %v", r.at.Format("15:04:05.000"), r.took.Round(time.Millisecond), r.err)
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
		err := stack.GetJSON(httpClient, url, nil)
		l.mu.Lock()
		l.results = append(l.results, result{start, time.Since(start), err})
		l.mu.Unlock()
	}
}

// count returns how many requests sent after since have returned, and how
// many of them succeeded.
func (l *load) count(since time.Time) (returned, ok int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.results {
		if r.at.After(since) {
			returned++
			if r.err == nil {
				ok++
			}
		}
	}
	return returned, ok
}

// waitForSuccesses returns once n more requests have succeeded.
func (l *load) waitForSuccesses(tb testing.TB, n int) {
	tb.Helper()
	_, before := l.count(time.Time{})
	poll.Eventually(tb, 30*time.Second, func() error {
		if returned, ok := l.count(time.Time{}); ok < before+n {
			return fmt.Errorf("%d of %d successful requests (%d failed)", ok, before+n, returned-ok)
		}
		return nil
	})
}

// waitForResults returns once n requests sent after since have returned.
func (l *load) waitForResults(tb testing.TB, since time.Time, n int) {
	tb.Helper()
	poll.Eventually(tb, 30*time.Second, func() error {
		if returned, _ := l.count(since); returned < n {
			return fmt.Errorf("%d of %d requests returned", returned, n)
		}
		return nil
	})
}

// stop ends the requests and returns every result.
func (l *load) stop() []result {
	l.stopOnce.Do(func() { close(l.quit) })
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.results)
}

// outcome is the number of requests in results that succeeded and a line
// for each that failed.
func outcome(results []result) (ok int, failures []string) {
	for _, r := range results {
		if r.err != nil {
			failures = append(failures, r.String())
		} else {
			ok++
		}
	}
	return ok, failures
}
