package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/example/micro-starter/pkg/service"
)

// hangGuard bounds how long a test waits on a connection: a deadline for a
// server that never answers, not a way to synchronise.
const hangGuard = 10 * time.Second

// startHTTPServer serves the API on fakes with the server main builds, on a
// free loopback port, and returns its address.
func startHTTPServer(tb testing.TB, c httpConfig, f *apiFixture) string {
	tb.Helper()
	return startServer(tb, c, f, nil)
}

// startServer is startHTTPServer, over HTTPS if tlsConfig is not nil.
func startServer(tb testing.TB, c httpConfig, f *apiFixture, tlsConfig *tls.Config) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := newHTTPServer(c, f.api.Handler())
	srv.TLSConfig = tlsConfig
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = serve(srv, ln)
	}()
	tb.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String()
}

// lenient is a configuration whose every bound is far beyond any test, for
// a test to tighten the one it checks.
func lenient() httpConfig {
	return httpConfig{ReadHeaderTimeout: time.Minute, ReadTimeout: time.Minute, WriteTimeout: time.Minute, IdleTimeout: time.Minute}
}

func dial(tb testing.TB, addr string) net.Conn {
	tb.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(hangGuard)); err != nil {
		tb.Fatal(err)
	}
	return conn
}

// TestHTTPServerCutsSlowBody: a body sent one byte at a time is cut at the
// read timeout, long before the client would have finished sending it; the
// client gets a 400 and the service no call.
func TestHTTPServerCutsSlowBody(t *testing.T) {
	c := lenient()
	c.ReadHeaderTimeout, c.ReadTimeout = 100*time.Millisecond, 200*time.Millisecond
	f := newFixture(t, nil, &fakeHello{greet: greet}, nil)
	conn := dial(t, startHTTPServer(t, c, f))

	// The body, about 250 bytes at one per 20 ms, takes 5 s to send: 25
	// times the bound.
	body := `{"name":"` + strings.Repeat("a", 238) + `"}`
	if _, err := fmt.Fprintf(conn, "POST /hello HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body)); err != nil {
		t.Fatal(err)
	}
	var sent atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := range len(body) {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := conn.Write([]byte{body[i]}); err != nil {
				return
			}
			sent.Add(1)
		}
	}()

	rsp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v (%d of %d bytes of the body sent)", err, sent.Load(), len(body))
	}
	answer, _ := io.ReadAll(rsp.Body)
	rsp.Body.Close()
	if n := sent.Load(); n == int64(len(body)) {
		t.Errorf("the server waited for the whole slow body (%d bytes): answer %d %s", n, rsp.StatusCode, answer)
	}
	if rsp.StatusCode != http.StatusBadRequest || !strings.Contains(string(answer), "request body: not received in full") {
		t.Errorf("answer %d %s, want 400 request body: not received in full", rsp.StatusCode, answer)
	}
	if strings.Contains(string(answer), "127.0.0.1") {
		t.Errorf("answer %s names an address", answer)
	}
	if calls := f.hello.Requests(); len(calls) != 0 {
		t.Errorf("hello called with %q, want no call", calls)
	}
}

// TestHTTPServerClosesIdleConnection: a keep-alive connection left idle
// after an answer is closed by the server at the idle timeout.
func TestHTTPServerClosesIdleConnection(t *testing.T) {
	c := lenient()
	c.IdleTimeout = 100 * time.Millisecond
	conn := dial(t, startHTTPServer(t, c, newFixture(t, nil, nil, nil)))

	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	rsp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, rsp.Body)
	rsp.Body.Close()
	if rsp.StatusCode != http.StatusOK || rsp.Close {
		t.Fatalf("GET /healthz: %d, close %v; want 200 on a connection kept alive", rsp.StatusCode, rsp.Close)
	}

	// Send nothing more: the server must close the connection.
	if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("read on the idle connection: %v, want EOF (closed by the server)", err)
	}
}

// TestHTTPServerLimitsHeaders: headers far beyond what the API needs are
// refused, not buffered.
func TestHTTPServerLimitsHeaders(t *testing.T) {
	f := newFixture(t, nil, nil, nil)
	addr := startHTTPServer(t, lenient(), f)
	req, err := http.NewRequest("GET", "http://"+addr+"/healthz", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Padding", strings.Repeat("a", 2*maxHeaderBytes))
	hc := &http.Client{Timeout: hangGuard}
	rsp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rsp.Body.Close()
	if rsp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d, want 431", rsp.StatusCode)
	}
}

func TestHTTPConfigValidate(t *testing.T) {
	requestTimeout := service.DefaultConfig("gateway").Client.RequestTimeout
	with := func(change func(*httpConfig)) httpConfig {
		c := defaultHTTPConfig()
		change(&c)
		return c
	}
	tests := []struct {
		name string
		c    httpConfig
		want string // "": valid
	}{
		{"defaults", defaultHTTPConfig(), ""},
		{"write timeout just above read plus request", with(func(c *httpConfig) { c.WriteTimeout = c.ReadTimeout + requestTimeout + time.Millisecond }), ""},
		{"write timeout equal to read plus request", with(func(c *httpConfig) { c.WriteTimeout = c.ReadTimeout + requestTimeout }), "write timeout"},
		{"write timeout below the request timeout", with(func(c *httpConfig) { c.WriteTimeout = requestTimeout / 2 }), "write timeout"},
		{"no read timeout", with(func(c *httpConfig) { c.ReadTimeout = 0 }), "must be positive"},
		{"no idle timeout", with(func(c *httpConfig) { c.IdleTimeout = 0 }), "must be positive"},
		{"negative read header timeout", with(func(c *httpConfig) { c.ReadHeaderTimeout = -time.Second }), "must be positive"},
		{"header timeout above read timeout", with(func(c *httpConfig) { c.ReadHeaderTimeout = c.ReadTimeout + time.Second }), "read header timeout"},
		{"https", with(func(c *httpConfig) { c.TLSCert, c.TLSKey = "a.crt", "a.key" }), ""},
		{"key without certificate", with(func(c *httpConfig) { c.TLSKey = "a.key" }), "go together"},
		{"no rate limit, no burst", with(func(c *httpConfig) { c.RateLimit, c.RateBurst = 0, 0 }), ""},
		{"fractional rate limit", with(func(c *httpConfig) { c.RateLimit, c.RateBurst = 0.5, 1 }), ""},
		{"infinite rate limit", with(func(c *httpConfig) { c.RateLimit = math.Inf(1) }), "http rate limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.validate(requestTimeout)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("validate = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("validate = %v, want an error about %s", err, tt.want)
			}
		})
	}
}
