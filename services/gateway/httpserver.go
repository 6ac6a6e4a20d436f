package main

import (
	"flag"
	"fmt"
	"math"
	"net"
	"net/http"
	"time"

	"github.com/example/micro-starter/pkg/service"
)

// maxHeaderBytes bounds the request line and headers. A query string is
// part of it; 64 KiB is far more than any request of this API needs, and
// net/http's default (1 MiB) per connection is memory an anonymous client
// can hold for nothing.
const maxHeaderBytes = 64 << 10

// httpConfig is the gateway's HTTP server: where it listens, and how long
// one connection may take for each step, so that no client can hold a
// connection, and the memory behind it, for as long as it likes.
type httpConfig struct {
	Address           string
	ReadHeaderTimeout time.Duration // from accepting a request to the end of its headers
	ReadTimeout       time.Duration // from accepting a request to the end of its body
	WriteTimeout      time.Duration // from the end of the headers to the end of the answer
	IdleTimeout       time.Duration // how long a keep-alive connection waits for the next request

	// TLSCert and TLSKey are PEM files: with both the gateway serves HTTPS
	// only, with neither plain HTTP.
	TLSCert, TLSKey string

	// RateLimit is the requests per second each client may send on
	// average, RateBurst how many at once; 0 requests per second: no limit.
	RateLimit float64
	RateBurst int
}

func defaultHTTPConfig() httpConfig {
	return httpConfig{
		Address:           ":8080",
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      20 * time.Second,
		IdleTimeout:       60 * time.Second,
		// Far above what a person or a well-behaved program sends, and a
		// tenth of what one gateway serves on two cores (about 5,000 per
		// second, docs/performance.md): no single address can take it all.
		RateLimit: 500,
		RateBurst: 1000,
	}
}

// httpEnv names the variable of each HTTP flag: the flag name in capitals,
// without MICRO_, as these settings are the gateway's own.
func httpEnv() map[string]string {
	return map[string]string{
		"http_address":             "HTTP_ADDRESS",
		"http_read_header_timeout": "HTTP_READ_HEADER_TIMEOUT",
		"http_read_timeout":        "HTTP_READ_TIMEOUT",
		"http_write_timeout":       "HTTP_WRITE_TIMEOUT",
		"http_idle_timeout":        "HTTP_IDLE_TIMEOUT",
		"http_tls_cert":            "HTTP_TLS_CERT",
		"http_tls_key":             "HTTP_TLS_KEY",
		"http_rate_limit":          "HTTP_RATE_LIMIT",
		"http_rate_burst":          "HTTP_RATE_BURST",
	}
}

// flags declares c's settings on fs; httpEnv names their variables.
func (c *httpConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Address, "http_address", c.Address, "HTTP listen address (--health_probe checks /readyz here)")
	fs.DurationVar(&c.ReadHeaderTimeout, "http_read_header_timeout", c.ReadHeaderTimeout, "bound on reading a request's headers")
	fs.DurationVar(&c.ReadTimeout, "http_read_timeout", c.ReadTimeout, "bound on reading a whole request, body included")
	fs.DurationVar(&c.WriteTimeout, "http_write_timeout", c.WriteTimeout, "bound on answering a request once its headers are read; above --http_read_timeout plus --client_request_timeout")
	fs.DurationVar(&c.IdleTimeout, "http_idle_timeout", c.IdleTimeout, "how long an idle keep-alive connection is kept")
	fs.StringVar(&c.TLSCert, "http_tls_cert", c.TLSCert, "PEM certificate (chain) file: with --http_tls_key, serve HTTPS only")
	fs.StringVar(&c.TLSKey, "http_tls_key", c.TLSKey, "PEM private key file of --http_tls_cert")
	fs.Float64Var(&c.RateLimit, "http_rate_limit", c.RateLimit, "requests per second each client address may send on average (429 beyond); 0: no limit")
	fs.IntVar(&c.RateBurst, "http_rate_burst", c.RateBurst, "requests each client address may send at once above --http_rate_limit")
}

// validate reports settings that cannot work. requestTimeout is the bound
// on a call to a service: an answer must be able to wait for the whole
// body and then for the call, or the client gets a closed connection where
// a 504 was due.
func (c httpConfig) validate(requestTimeout time.Duration) error {
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("http tls: --http_tls_cert %q and --http_tls_key %q go together: set both for HTTPS, neither for HTTP", c.TLSCert, c.TLSKey)
	}
	if !(c.RateLimit >= 0) || math.IsInf(c.RateLimit, 0) {
		return fmt.Errorf("http rate limit %v must be a number of requests per second, 0 for no limit", c.RateLimit)
	}
	if c.RateLimit > 0 && c.RateBurst < 1 {
		return fmt.Errorf("http rate burst %d must be at least 1 with a rate limit (--http_rate_limit 0 for no limit)", c.RateBurst)
	}
	if c.ReadHeaderTimeout <= 0 || c.ReadTimeout <= 0 || c.WriteTimeout <= 0 || c.IdleTimeout <= 0 {
		return fmt.Errorf("http timeouts must be positive (0 would mean none): read header %v, read %v, write %v, idle %v",
			c.ReadHeaderTimeout, c.ReadTimeout, c.WriteTimeout, c.IdleTimeout)
	}
	if c.ReadHeaderTimeout > c.ReadTimeout {
		return fmt.Errorf("http read header timeout %v must not exceed the http read timeout %v", c.ReadHeaderTimeout, c.ReadTimeout)
	}
	if c.WriteTimeout <= c.ReadTimeout+requestTimeout {
		return fmt.Errorf("http write timeout %v must be above the http read timeout %v plus the client request timeout %v",
			c.WriteTimeout, c.ReadTimeout, requestTimeout)
	}
	return nil
}

// newHTTPServer is the gateway's HTTP server, as main runs it.
func newHTTPServer(c httpConfig, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              c.Address,
		Handler:           h,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// serve serves srv on ln until srv is shut down: HTTPS if srv.TLSConfig is
// set (only HTTPS: a plain HTTP request is refused), plain HTTP otherwise.
func serve(srv *http.Server, ln net.Listener) error {
	if srv.TLSConfig != nil {
		return srv.ServeTLS(ln, "", "") // the certificate comes from TLSConfig
	}
	return srv.Serve(ln)
}

// probe is --health_probe: GET /readyz on the gateway's own port, over
// HTTPS when the gateway serves HTTPS.
func (c httpConfig) probe() error {
	if c.TLSCert == "" {
		return service.ProbeHTTP(c.Address, "/readyz")
	}
	tc, err := probeTLS(c.TLSCert)
	if err != nil {
		return err
	}
	return service.ProbeHTTPS(c.Address, "/readyz", tc)
}
