package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/example/micro-starter/internal/poll"
)

// node is a running service instance and the id the registry knows it by.
type node struct {
	*process
	id string
}

// mustStartService starts one instance of service against reg and returns
// once the registry lists it.
func mustStartService(tb testing.TB, reg registryServer, service, name string, args ...string) *node {
	tb.Helper()
	before := ids(reg.Instances(tb, service))
	args = append([]string{
		"--registry", reg.Name(), "--registry_address", reg.Address(),
		"--server_address", "127.0.0.1:0",
	}, args...)
	p := mustStart(tb, name, filepath.Join(binDir, service), args...)
	n := &node{process: p}
	poll.Eventually(tb, 20*time.Second, func() error {
		if p.exited() {
			tb.Fatalf("%s exited at start: %v", name, p.err)
		}
		for _, id := range ids(reg.Instances(tb, service)) {
			if !slices.Contains(before, id) {
				n.id = id
				return nil
			}
		}
		return fmt.Errorf("%s: not registered as %s", name, service)
	})
	return n
}

func ids(is []instance) []string {
	var ids []string
	for _, i := range is {
		ids = append(ids, i.ID)
	}
	return ids
}

// stack is the whole system: user instances, one hello, one gateway.
type stack struct {
	users   []*node
	hello   *node
	gateway *node
	url     string // the gateway's HTTP API
}

// mustStartStack starts the stack against reg, each service with args, and
// returns once the gateway reports ready.
func mustStartStack(tb testing.TB, reg registryServer, users int, args ...string) *stack {
	tb.Helper()
	httpAddr := "127.0.0.1:" + strconv.Itoa(freePort(tb))
	s := &stack{url: "http://" + httpAddr}
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
		for _, n := range append([]*node{s.gateway, s.hello}, s.users...) {
			n.signal(tb, syscall.SIGTERM)
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
	rsp, err := httpClient.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer rsp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(rsp.Body).Decode(v); err != nil {
			tb.Fatalf("GET %s: %d, decoding body: %v", url, rsp.StatusCode, err)
		}
	}
	return rsp.StatusCode
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
		if err := getOK(url); err != nil {
			l.mu.Lock()
			l.failures = append(l.failures, fmt.Sprintf("sent %s, failed after %v: %v",
				start.Format("15:04:05.000"), time.Since(start).Round(time.Millisecond), err))
			l.mu.Unlock()
			continue
		}
		l.ok.Add(1)
	}
}

func getOK(url string) error {
	rsp, err := httpClient.Get(url)
	if err != nil {
		return err
	}
	defer rsp.Body.Close()
	body, err := io.ReadAll(rsp.Body)
	if err != nil {
		return err
	}
	if rsp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", rsp.Status, bytes.TrimSpace(body))
	}
	return nil
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
