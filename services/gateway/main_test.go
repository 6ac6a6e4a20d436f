package main

import (
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/example/micro-starter/pkg/service"
	"github.com/example/micro-starter/pkg/service/servicetest"
)

func TestRunUsageErrors(t *testing.T) {
	// The HTTP address is a free port on loopback: the gateway binds it
	// once its settings are checked.
	servicetest.MustRejectUsage(t, run, []string{"gateway", "--http_address", "127.0.0.1:0"},
		servicetest.UsageCase{Name: "users_file is not gateway's flag", Args: []string{"--users_file", "/nonexistent/users.json"}, Want: "users_file"},
		// An answer must be able to wait for the body and then for a whole call.
		servicetest.UsageCase{Name: "http write timeout below read plus request timeout", Args: []string{"--http_write_timeout", "12s"}, Want: "http write timeout 12s must be above"},
		servicetest.UsageCase{Name: "client request timeout beyond the http write timeout", Args: []string{"--client_request_timeout", "15s"}, Want: "client request timeout 15s"},
		servicetest.UsageCase{Name: "HTTP_WRITE_TIMEOUT from the environment", Env: map[string]string{"HTTP_WRITE_TIMEOUT": "1s"}, Want: "http write timeout 1s"},
		servicetest.UsageCase{Name: "no read timeout", Args: []string{"--http_read_timeout", "0s"}, Want: "must be positive"},
		servicetest.UsageCase{Name: "HTTP_IDLE_TIMEOUT not a duration", Env: map[string]string{"HTTP_IDLE_TIMEOUT": "long"}, Want: "HTTP_IDLE_TIMEOUT"},
		servicetest.UsageCase{Name: "HTTP_READ_HEADER_TIMEOUT above the read timeout", Env: map[string]string{"HTTP_READ_HEADER_TIMEOUT": "11s"}, Want: "read header timeout 11s"},
		// One file of the pair would serve neither HTTPS nor what was meant.
		servicetest.UsageCase{Name: "certificate without key", Args: []string{"--http_tls_cert", "gateway.crt"}, Want: "go together"},
		servicetest.UsageCase{Name: "HTTP_TLS_KEY without certificate", Env: map[string]string{"HTTP_TLS_KEY": "gateway.key"}, Want: "go together"},
		servicetest.UsageCase{Name: "negative rate limit", Args: []string{"--http_rate_limit", "-1"}, Want: "http rate limit -1"},
		servicetest.UsageCase{Name: "HTTP_RATE_LIMIT not a number", Env: map[string]string{"HTTP_RATE_LIMIT": "NaN"}, Want: "http rate limit NaN"},
		servicetest.UsageCase{Name: "no burst with a rate limit", Args: []string{"--http_rate_burst", "0"}, Want: "http rate burst 0"},
	)
}

func TestRunHelp(t *testing.T) {
	servicetest.MustPrintHelp(t, run, "gateway", "-registry", "-server_address", "-http_address",
		"-http_read_header_timeout", "-http_read_timeout", "-http_write_timeout", "-http_idle_timeout",
		"-http_tls_cert", "-http_tls_key", "-http_rate_limit", "-http_rate_burst")
}

// TestRunStartsAndStops starts the gateway on loopback, checks that its
// HTTP API answers, and stops it.
func TestRunStartsAndStops(t *testing.T) {
	r := servicetest.Start(t, run, []string{"gateway", "--registry", "memory", "--server_address", "127.0.0.1:0",
		"--http_address", "127.0.0.1:0", "--shutdown_drain", "0s"}, nil)
	r.MustServe(t)
	// "http listening" is logged before the service starts, so it is there.
	m := regexp.MustCompile(`msg="http listening" address=(\S+)`).FindStringSubmatch(r.Out.String())
	if m == nil {
		t.Fatalf("no HTTP address logged:\n%s", r.Out)
	}
	base := "http://" + m[1]
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

	wantGet(t, hc, base+"/healthz", http.StatusOK, `"status":"ok"`)
	// Nothing else is registered in the gateway's own memory registry.
	wantGet(t, hc, base+"/readyz", http.StatusServiceUnavailable, `"error":"no instance of user"`)

	r.MustStop(t)
	if rsp, err := hc.Get(base + "/healthz"); err == nil {
		rsp.Body.Close()
		t.Errorf("GET /healthz after run returned: status %d, want the listener closed", rsp.StatusCode)
	}
}

func wantGet(tb testing.TB, hc *http.Client, url string, status int, bodyPart string) {
	tb.Helper()
	rsp, err := hc.Get(url)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	defer rsp.Body.Close()
	body, err := io.ReadAll(rsp.Body)
	if err != nil {
		tb.Fatalf("GET %s: reading body: %v", url, err)
	}
	if rsp.StatusCode != status || !strings.Contains(string(body), bodyPart) {
		tb.Errorf("GET %s = %d %s, want %d with %s", url, rsp.StatusCode, body, status, bodyPart)
	}
	if ct := rsp.Header.Get("Content-Type"); ct != "application/json" {
		tb.Errorf("GET %s: Content-Type %q, want application/json", url, ct)
	}
}

// TestRunUsageErrorWithBusyPort checks that a wrong setting is reported as
// a usage error (exit status 2) even when the HTTP port is taken: the
// mistake to fix is the setting, and nothing should have been bound for it.
func TestRunUsageErrorWithBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })

	for _, tt := range []struct {
		name string
		args []string
	}{
		{"unknown registry", []string{"--registry", "zk"}},
		{"unknown selector", []string{"--registry", "memory", "--selector", "weird"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"gateway", "--http_address", ln.Addr().String()}, tt.args...)
			err := servicetest.Start(t, run, args, nil).Wait(t)
			if code := service.ExitCode(err); code != 2 {
				t.Errorf("run(%q) = %v, exit status %d; want a usage error, status 2", args, err, code)
			}
		})
	}
}
