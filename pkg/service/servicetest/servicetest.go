// Package servicetest tests a service's run function as main calls it:
// flags and environment in; a usage error, or an instance that serves and
// stops, out.
package servicetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/pkg/service"
)

// Run is a service's run function.
type Run func(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error

// Deadline bounds how long a helper waits on run: a deadline for a hang,
// not a way to synchronise.
const Deadline = 30 * time.Second

// Running is a call of run in the background.
type Running struct {
	Out    *Output
	cancel context.CancelFunc
	done   chan error
}

// Start calls run with args and env in a goroutine; its context is
// cancelled by Stop or when the test ends.
func Start(tb testing.TB, run Run, args []string, env map[string]string) *Running {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	r := &Running{Out: &Output{serving: make(chan struct{})}, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- run(ctx, args, func(k string) string { return env[k] }, r.Out) }()
	return r
}

// Wait returns what run returned, failing the test if it does not return.
func (r *Running) Wait(tb testing.TB) error {
	tb.Helper()
	select {
	case err := <-r.done:
		return err
	case <-time.After(Deadline):
		tb.Fatalf("run did not return within %v; output:\n%s", Deadline, r.Out)
		return nil
	}
}

// MustServe waits until the service logs that it is serving.
func (r *Running) MustServe(tb testing.TB) {
	tb.Helper()
	select {
	case <-r.Out.serving:
	case err := <-r.done:
		tb.Fatalf("run returned before serving: %v; output:\n%s", err, r.Out)
	case <-time.After(Deadline):
		tb.Fatalf("run not serving within %v; output:\n%s", Deadline, r.Out)
	}
}

// MustStop cancels run's context, as SIGTERM does, and checks that run
// returns nil after logging that it stopped.
func (r *Running) MustStop(tb testing.TB) {
	tb.Helper()
	r.cancel()
	if err := r.Wait(tb); err != nil {
		tb.Fatalf("run after cancel = %v, want nil; output:\n%s", err, r.Out)
	}
	if !strings.Contains(r.Out.String(), "msg=stopped") {
		tb.Errorf("no stop logged:\n%s", r.Out)
	}
}

// MustFailUsage checks that run with args and env fails with a usage error
// (exit status 2) that contains want.
func MustFailUsage(tb testing.TB, run Run, args []string, env map[string]string, want string) {
	tb.Helper()
	err := Start(tb, run, args, env).Wait(tb)
	if err == nil {
		tb.Fatalf("run(%q) = nil, want an error", args)
	}
	if code := service.ExitCode(err); code != 2 {
		tb.Errorf("ExitCode(%v) = %d, want 2", err, code)
	}
	if !strings.Contains(err.Error(), want) {
		tb.Errorf("err = %q, want it to contain %q", err, want)
	}
}

// UsageCase is a wrong setting, on the command line or in the environment,
// and a part of the error it must cause.
type UsageCase struct {
	Name string
	Args []string
	Env  map[string]string
	Want string
}

// commonUsageCases are wrong settings of the flags every service shares
// (pkg/service.Config.Flags).
var commonUsageCases = []UsageCase{
	{"unknown registry", []string{"--registry", "zk"}, nil, `unknown registry "zk"`},
	{"register_ttl not a duration", []string{"--register_ttl", "abc"}, nil, "register_ttl"},
	{"unknown flag", []string{"--no_such_flag"}, nil, "no_such_flag"},
	{"unexpected argument", []string{"extra"}, nil, `unexpected argument "extra"`},
	{"MICRO_REGISTRY from the environment", nil, map[string]string{"MICRO_REGISTRY": "zk"}, `unknown registry "zk"`},
	{"MICRO_REGISTER_TTL from the environment", nil, map[string]string{"MICRO_REGISTER_TTL": "abc"}, "MICRO_REGISTER_TTL"},
	{"unknown selector", []string{"--selector", "weird"}, nil, `strategy "weird"`},
	{"ttl not longer than interval", []string{"--register_ttl", "5", "--register_interval", "5s"}, nil, "register interval"},
	{"empty registry address", []string{"--registry_address", "a:1,,b:2"}, nil, "empty entry"},
	{"no --resilience: the plain go-micro comparison is not a product flag", []string{"--resilience", "off"}, nil, "resilience"},
	{"server_address without a port", []string{"--server_address", "nonsense"}, nil, "server address"},
	{"client attempt timeout above request timeout", []string{"--client_attempt_timeout", "10s", "--client_request_timeout", "1s"}, nil, "attempt timeout"},
}

// MustRejectUsage checks that run refuses, with a usage error, each wrong
// setting of the flags every service shares and each of the service's own
// cases. base is the command line each case is added to (the program name,
// and any flag the service needs to start on loopback). The registry is
// memory unless a case sets MICRO_REGISTRY, so that a case that wrongly got
// past the flags starts nothing on the network.
func MustRejectUsage(t *testing.T, run Run, base []string, own ...UsageCase) {
	for _, c := range append(slices.Clone(commonUsageCases), own...) {
		t.Run(c.Name, func(t *testing.T) {
			args := slices.Clone(base)
			if _, ok := c.Env["MICRO_REGISTRY"]; !ok {
				args = append(args, "--registry", "memory")
			}
			MustFailUsage(t, run, append(args, c.Args...), c.Env, c.Want)
		})
	}
}

// MustPrintHelp checks that -h and --help return nil and print a usage that
// names each of flags.
func MustPrintHelp(t *testing.T, run Run, name string, flags ...string) {
	for _, help := range []string{"-h", "--help"} {
		t.Run(help, func(t *testing.T) {
			r := Start(t, run, []string{name, help}, nil)
			if err := r.Wait(t); err != nil {
				t.Fatalf("run(%s) = %v, want nil", help, err)
			}
			for _, f := range flags {
				if !strings.Contains(r.Out.String(), f) {
					t.Errorf("usage does not mention %s:\n%s", f, r.Out)
				}
			}
		})
	}
}

// MustProbe checks --health_probe as a container health check runs it
// (the address from MICRO_SERVER_ADDRESS): it passes against a registered
// instance of run (memory registry) and fails once that instance stopped.
func MustProbe(t *testing.T, run Run, name string) {
	t.Helper()
	addr := freeAddress(t)
	r := Start(t, run, []string{name, "--registry", "memory", "--server_address", addr, "--shutdown_drain", "0s"}, nil)
	r.MustServe(t) // registered: the memory registry registers before serving is logged
	probe := func() error {
		return Start(t, run, []string{name, "--health_probe"}, map[string]string{"MICRO_SERVER_ADDRESS": addr}).Wait(t)
	}
	if err := probe(); err != nil {
		t.Fatalf("--health_probe against a serving instance: %v", err)
	}
	r.MustStop(t)
	if err := probe(); err == nil {
		t.Fatal("--health_probe passed with no instance")
	}
}

// freeAddress is a 127.0.0.1 address whose port was free a moment ago.
func freeAddress(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Output is run's stdout: it keeps what was written and notes when the
// service logs that it is serving.
type Output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	once    sync.Once
	serving chan struct{}
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if bytes.Contains(p, []byte("msg=serving")) {
		o.once.Do(func() { close(o.serving) })
	}
	return o.buf.Write(p)
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// Log is a log that a service's goroutines write and its test reads.
type Log struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// MustRun runs svc until the test ends, as a service's run does after its
// wiring, and returns once the instance has registered. At the end it
// stops svc and checks that Run returned nil.
func MustRun(tb testing.TB, svc *service.Service) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Run: %v", err)
		}
	})
	poll.Eventually(tb, Deadline, func() error {
		select {
		case err := <-done:
			return poll.Final(fmt.Errorf("Run returned before registering: %v", err))
		default:
		}
		if !svc.Healthy() {
			return errors.New("not registered yet")
		}
		return nil
	})
}
