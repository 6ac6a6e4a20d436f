package main

import (
	"flag"
	"fmt"
	"net/http"
	"time"
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
}

func defaultHTTPConfig() httpConfig {
	return httpConfig{
		Address:           ":8080",
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      20 * time.Second,
		IdleTimeout:       60 * time.Second,
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
	}
}

// flags declares c's settings on fs; httpEnv names their variables.
func (c *httpConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Address, "http_address", c.Address, "HTTP listen address (--health_probe checks /readyz here)")
	fs.DurationVar(&c.ReadHeaderTimeout, "http_read_header_timeout", c.ReadHeaderTimeout, "bound on reading a request's headers")
	fs.DurationVar(&c.ReadTimeout, "http_read_timeout", c.ReadTimeout, "bound on reading a whole request, body included")
	fs.DurationVar(&c.WriteTimeout, "http_write_timeout", c.WriteTimeout, "bound on answering a request once its headers are read; above --http_read_timeout plus --client_request_timeout")
	fs.DurationVar(&c.IdleTimeout, "http_idle_timeout", c.IdleTimeout, "how long an idle keep-alive connection is kept")
}

// validate reports settings that cannot work. requestTimeout is the bound
// on a call to a service: an answer must be able to wait for the whole
// body and then for the call, or the client gets a closed connection where
// a 504 was due.
func (c httpConfig) validate(requestTimeout time.Duration) error {
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
