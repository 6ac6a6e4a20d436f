package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/example/micro-starter/pkg/service"
)

// runDeadline bounds how long a test waits on run; it is a deadline for a
// hang, not a way to synchronise.
const runDeadline = 30 * time.Second

// logSink is run's stdout: it keeps what was written and closes serving
// when the service logs that it is serving.
type logSink struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	once    sync.Once
	serving chan struct{}
}

func newLogSink() *logSink { return &logSink{serving: make(chan struct{})} }

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if bytes.Contains(p, []byte("msg=serving")) {
		s.once.Do(func() { close(s.serving) })
	}
	return s.buf.Write(p)
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func envFunc(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// startRun calls run in a goroutine with a context cancelled on cleanup,
// and returns the channel run's error arrives on.
func startRun(tb testing.TB, ctx context.Context, args []string, env map[string]string, out *logSink) <-chan error {
	tb.Helper()
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, envFunc(env), out) }()
	return done
}

// waitRun waits for run to return, failing the test if it does not.
func waitRun(tb testing.TB, done <-chan error, out *logSink) error {
	tb.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(runDeadline):
		tb.Fatalf("run did not return within %v; output:\n%s", runDeadline, out)
		return nil
	}
}

func TestRunUsageErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"unknown registry", []string{"--registry", "zk"}, nil, `unknown registry "zk"`},
		{"register_ttl not a duration", []string{"--register_ttl", "abc"}, nil, "register_ttl"},
		{"unknown flag", []string{"--no_such_flag"}, nil, "no_such_flag"},
		{"unexpected argument", []string{"extra"}, nil, `unexpected argument "extra"`},
		{"MICRO_REGISTRY from the environment", nil, map[string]string{"MICRO_REGISTRY": "zk"}, `unknown registry "zk"`},
		{"MICRO_REGISTER_TTL from the environment", nil, map[string]string{"MICRO_REGISTER_TTL": "abc"}, "MICRO_REGISTER_TTL"},
		{"unknown selector", []string{"--selector", "weird"}, nil, `strategy "weird"`},
		{"ttl not longer than interval", []string{"--register_ttl", "5", "--register_interval", "5s"}, nil, "register interval"},
		{"empty registry address", []string{"--registry_address", "a:1,,b:2"}, nil, "empty entry"},
		{"users_file is not hello's flag", []string{"--users_file", "/nonexistent/users.json"}, nil, "users_file"},
		{"client attempt timeout above request timeout", []string{"--client_attempt_timeout", "10s", "--client_request_timeout", "1s"}, nil, "attempt timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			out := newLogSink()
			// The registry is memory so that a case that wrongly got past
			// the flags starts nothing on the network.
			args := append([]string{"hello", "--registry", "memory"}, tt.args...)
			if _, ok := tt.env["MICRO_REGISTRY"]; ok {
				args = append([]string{"hello"}, tt.args...)
			}
			err := waitRun(t, startRun(t, ctx, args, tt.env, out), out)
			if err == nil {
				t.Fatalf("run(%q) = nil, want an error", args)
			}
			if code := service.ExitCode(err); code != 2 {
				t.Errorf("ExitCode(%v) = %d, want 2", err, code)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestRunHelp(t *testing.T) {
	for _, flag := range []string{"-h", "--help"} {
		t.Run(flag, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			out := newLogSink()
			if err := waitRun(t, startRun(t, ctx, []string{"hello", flag}, nil, out), out); err != nil {
				t.Fatalf("run(%s) = %v, want nil", flag, err)
			}
			for _, want := range []string{"-registry", "-server_address", "-selector"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("usage does not mention %s:\n%s", want, out)
				}
			}
		})
	}
}

func TestRunStartsAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	out := newLogSink()
	done := startRun(t, ctx, []string{"hello", "--registry", "memory", "--server_address", "127.0.0.1:0", "--shutdown_drain", "0s"}, nil, out)

	select {
	case <-out.serving:
	case err := <-done:
		t.Fatalf("run returned before serving: %v; output:\n%s", err, out)
	case <-time.After(runDeadline):
		t.Fatalf("run not serving within %v; output:\n%s", runDeadline, out)
	}
	cancel()
	if err := waitRun(t, done, out); err != nil {
		t.Fatalf("run after cancel = %v, want nil; output:\n%s", err, out)
	}
	if !strings.Contains(out.String(), "msg=stopped") {
		t.Errorf("no stop logged:\n%s", out)
	}
}
