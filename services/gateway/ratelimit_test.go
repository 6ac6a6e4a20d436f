package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/example/micro-starter/pkg/service/servicetest"
)

// fakeClock is the limiter's clock, moved by the test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestLimiter(rate float64, burst, max int, clock *fakeClock) (*rateLimiter, *bytes.Buffer) {
	var log bytes.Buffer
	return newRateLimiter(rate, burst, max, clock.now, slog.New(slog.NewTextHandler(&log, nil))), &log
}

func clientAt(tb testing.TB, addr string) netip.Prefix {
	tb.Helper()
	return clientOf(&http.Request{RemoteAddr: addr})
}

// TestRateLimiterBucket: a client sends its burst at once, then one
// request per 1/rate; another client has its own bucket.
func TestRateLimiterBucket(t *testing.T) {
	clock := newFakeClock()
	l, _ := newTestLimiter(10, 3, 100, clock)
	a, b := clientAt(t, "192.0.2.1:1000"), clientAt(t, "192.0.2.2:1000")
	for i := range 3 {
		if ok, _ := l.allow(a); !ok {
			t.Fatalf("request %d of a burst of 3 refused", i+1)
		}
	}
	ok, wait := l.allow(a)
	if ok || wait != 100*time.Millisecond {
		t.Errorf("4th request at once: allowed %v, wait %v; want refused, wait 100ms", ok, wait)
	}
	if ok, _ := l.allow(b); !ok {
		t.Error("another client refused")
	}
	clock.advance(100 * time.Millisecond)
	if ok, _ := l.allow(a); !ok {
		t.Error("refused after waiting 1/rate")
	}
	if ok, _ := l.allow(a); ok {
		t.Error("two requests allowed after waiting 1/rate")
	}
}

// TestRateLimiterSlowRate: a rate so slow that its refill time or wait
// overflows a Duration still limits, and tells a wait of at most maxWait.
func TestRateLimiterSlowRate(t *testing.T) {
	clock := newFakeClock()
	l, _ := newTestLimiter(1e-12, 1, 100, clock)
	a := clientAt(t, "192.0.2.1:1000")
	if ok, _ := l.allow(a); !ok {
		t.Fatal("first request refused")
	}
	clock.advance(time.Hour)
	if ok, wait := l.allow(a); ok || wait <= 0 || wait > maxWait {
		t.Errorf("second request: allowed %v, wait %v; want refused, wait in (0, %v]", ok, wait, maxWait)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, tt := range []struct {
		wait time.Duration
		want int
	}{
		{0, 1}, {5 * time.Millisecond, 1}, {time.Second, 1}, {2500 * time.Millisecond, 3}, {4 * time.Second, 4},
	} {
		if got := retryAfterSeconds(tt.wait); got != tt.want {
			t.Errorf("retryAfterSeconds(%v) = %d, want %d", tt.wait, got, tt.want)
		}
	}
}

// TestClientOf: the client is the connection's address, whatever the
// request's headers say; an IPv6 client is its /64.
func TestClientOf(t *testing.T) {
	req := func(remote, forwarded string) *http.Request {
		r := httptest.NewRequest("GET", "/healthz", nil)
		r.RemoteAddr = remote
		if forwarded != "" {
			r.Header.Set("X-Forwarded-For", forwarded)
			r.Header.Set("X-Real-Ip", forwarded)
		}
		return r
	}
	for _, tt := range []struct {
		name, a, b string // remote addresses
		fa, fb     string // X-Forwarded-For
		same       bool
	}{
		{"one IPv4 address, two ports", "192.0.2.1:1000", "192.0.2.1:2000", "", "", true},
		{"two IPv4 addresses", "192.0.2.1:1000", "192.0.2.2:1000", "", "", false},
		{"one address, two X-Forwarded-For", "192.0.2.1:1000", "192.0.2.1:1000", "198.51.100.1", "198.51.100.2", true},
		{"two addresses, one X-Forwarded-For", "192.0.2.1:1000", "192.0.2.2:1000", "198.51.100.1", "198.51.100.1", false},
		{"one IPv6 /64", "[2001:db8:1:2::1]:1000", "[2001:db8:1:2:ffff::9]:1000", "", "", true},
		{"two IPv6 /64s", "[2001:db8:1:2::1]:1000", "[2001:db8:1:3::1]:1000", "", "", false},
		{"IPv4 and IPv4-mapped IPv6", "192.0.2.1:1000", "[::ffff:192.0.2.1]:1000", "", "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, b := clientOf(req(tt.a, tt.fa)), clientOf(req(tt.b, tt.fb))
			if (a == b) != tt.same {
				t.Errorf("clientOf: %v and %v, want same=%v", a, b, tt.same)
			}
		})
	}
}

// TestRateLimiterForgetsIdleClients: a client idle long enough for its
// bucket to be full again is dropped, so addresses that come and go do not
// grow the map.
func TestRateLimiterForgetsIdleClients(t *testing.T) {
	clock := newFakeClock()
	l, _ := newTestLimiter(10, 20, 1000, clock) // refill: 2 s
	for i := range 100 {
		l.allow(clientAt(t, netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).String()+":1"))
	}
	if n := l.tracked(); n != 100 {
		t.Fatalf("tracking %d clients, want 100", n)
	}
	clock.advance(time.Second)
	active := clientAt(t, "192.0.2.1:1")
	l.allow(active)
	clock.advance(time.Second) // the 100 idle for 2 s, active for 1 s
	l.allow(clientAt(t, "192.0.2.2:1"))
	if n := l.tracked(); n != 2 {
		t.Errorf("tracking %d clients after the idle ones refilled, want 2 (one active, one new)", n)
	}
}

// TestRateLimiterCap: at most max clients are tracked; a new client beyond
// is let through untracked, once logged, and is tracked again once room is
// made.
func TestRateLimiterCap(t *testing.T) {
	clock := newFakeClock()
	l, log := newTestLimiter(1, 1, 3, clock) // refill: 1 s
	for _, a := range []string{"192.0.2.1:1", "192.0.2.2:1", "192.0.2.3:1"} {
		l.allow(clientAt(t, a))
	}
	extra := clientAt(t, "192.0.2.4:1")
	for i := range 3 {
		if ok, _ := l.allow(extra); !ok {
			t.Errorf("request %d of a client beyond the cap refused, want let through", i+1)
		}
	}
	if n := l.tracked(); n != 3 {
		t.Errorf("tracking %d clients, want the cap, 3", n)
	}
	if c := strings.Count(log.String(), "rate limiter full"); c != 1 {
		t.Errorf("%d warnings, want 1:\n%s", c, log)
	}
	clock.advance(time.Second)
	l.allow(extra)
	if ok, _ := l.allow(extra); ok {
		t.Error("once the idle clients are forgotten, the new client is still not limited")
	}
}

// limitedFixture is an API on fakes whose clients may send burst requests
// at once, then one per second.
func limitedFixture(tb testing.TB, burst int, clock *fakeClock) *apiFixture {
	f := newFixture(tb, nil, nil, nil)
	f.api.limit = newRateLimiter(1, burst, 100, clock.now, f.api.log)
	return f
}

// TestAPIRateLimit: beyond its burst a client gets a 429 with Retry-After,
// the usual JSON error and a request id, on every path; another client is
// served.
func TestAPIRateLimit(t *testing.T) {
	clock := newFakeClock()
	f := limitedFixture(t, 2, clock)
	get := func(remote, path string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", path, nil)
		r.RemoteAddr = remote
		rec := httptest.NewRecorder()
		f.api.Handler().ServeHTTP(rec, r)
		return rec
	}
	for i := range 2 {
		if rec := get("192.0.2.1:1000", "/healthz"); rec.Code != http.StatusOK {
			t.Fatalf("request %d within the burst: %d %s", i+1, rec.Code, rec.Body)
		}
	}
	for _, path := range []string{"/healthz", "/readyz", "/users/ada", "/nowhere"} {
		rec := get("192.0.2.1:2000", path)
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("GET %s beyond the burst: %d %q: %v", path, rec.Code, rec.Body, err)
		}
		if rec.Code != http.StatusTooManyRequests || body["error"] != "too many requests" || body["status"] != float64(429) {
			t.Errorf("GET %s beyond the burst: %d %v, want 429 too many requests", path, rec.Code, body)
		}
		if ra := rec.Header().Get("Retry-After"); ra != "1" {
			t.Errorf("GET %s: Retry-After %q, want 1", path, ra)
		}
		if id := rec.Header().Get(requestIDHeader); len(id) != 16 {
			t.Errorf("GET %s: request id %q", path, id)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("GET %s: Content-Type %q", path, ct)
		}
	}
	if calls := f.users.Requests(); len(calls) != 0 {
		t.Errorf("user called with %q while refused", calls)
	}
	if rec := get("192.0.2.2:1000", "/healthz"); rec.Code != http.StatusOK {
		t.Errorf("another client: %d %s, want 200", rec.Code, rec.Body)
	}
	clock.advance(time.Second)
	if rec := get("192.0.2.1:1000", "/healthz"); rec.Code != http.StatusOK {
		t.Errorf("after Retry-After: %d %s, want 200", rec.Code, rec.Body)
	}
}

// TestHTTPServerRateLimitsPerAddress: over a real listener, two clients on
// 127.0.0.1 share a bucket, and a client on 127.0.0.2 has its own.
func TestHTTPServerRateLimitsPerAddress(t *testing.T) {
	clock := newFakeClock()
	addr := startHTTPServer(t, lenient(), limitedFixture(t, 1, clock))
	from := func(local string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		return &http.Client{Timeout: hangGuard, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	}
	status := func(hc *http.Client) int {
		t.Helper()
		rsp, err := hc.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, rsp.Body)
		rsp.Body.Close()
		return rsp.StatusCode
	}
	if s := status(from("127.0.0.1")); s != http.StatusOK {
		t.Fatalf("first request: %d", s)
	}
	if s := status(from("127.0.0.1")); s != http.StatusTooManyRequests {
		t.Errorf("second request from 127.0.0.1 on a new connection: %d, want 429", s)
	}
	if s := status(from("127.0.0.2")); s != http.StatusOK {
		t.Errorf("first request from 127.0.0.2: %d, want 200", s)
	}
}

// TestRunRateLimit: the gateway limits each client as its flags say, and
// not at all with --http_rate_limit 0.
func TestRunRateLimit(t *testing.T) {
	for _, tt := range []struct {
		name   string
		flags  []string
		second int // status of the second request
	}{
		// One request per 1000 s: the second is refused however slow the machine.
		{"one request, then one per 1000 s", []string{"--http_rate_limit", "0.001", "--http_rate_burst", "1"}, http.StatusTooManyRequests},
		{"no limit", []string{"--http_rate_limit", "0", "--http_rate_burst", "1"}, http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := servicetest.Start(t, run, append([]string{"gateway", "--registry", "memory", "--server_address", "127.0.0.1:0",
				"--http_address", "127.0.0.1:0", "--shutdown_drain", "0s"}, tt.flags...), nil)
			r.MustServe(t)
			m := regexp.MustCompile(`msg="http listening" address=(\S+)`).FindStringSubmatch(r.Out.String())
			if m == nil {
				t.Fatalf("no HTTP address logged:\n%s", r.Out)
			}
			hc := &http.Client{Timeout: hangGuard}
			wantGet(t, hc, "http://"+m[1]+"/healthz", http.StatusOK, `"status":"ok"`)
			wantGet(t, hc, "http://"+m[1]+"/healthz", tt.second, `"status":`)
			r.MustStop(t)
		})
	}
}
