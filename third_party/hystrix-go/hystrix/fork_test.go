package hystrix

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// eventually fails t unless f returns nil within 5 s.
func eventually(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // polling, with the deadline above
	}
}

// counts is what the default collector has counted for the circuit name.
func counts(name string) map[string]float64 {
	cb, _, _ := GetCircuit(name)
	c := cb.metrics.DefaultCollector()
	now := time.Now()
	m := map[string]float64{}
	for k, n := range map[string]interface{ Sum(time.Time) float64 }{
		"requests": c.NumRequests(), "errors": c.Errors(), "success": c.Successes(),
		"failure": c.Failures(), "rejected": c.Rejects(), "short-circuit": c.ShortCircuits(),
		"timeout": c.Timeouts(), "context_canceled": c.ContextCanceled(),
		"context_deadline_exceeded": c.ContextDeadlineExceeded(),
		"fallback-success":          c.FallbackSuccesses(), "fallback-failure": c.FallbackFailures(),
	} {
		if v := n.Sum(now); v != 0 {
			m[k] = v
		}
	}
	return m
}

// wantCounts checks the counts at once: a call is counted before DoC
// returns (upstream counted it from a goroutine of the circuit's, later).
func wantCounts(t *testing.T, name string, want map[string]float64) {
	t.Helper()
	if got := counts(name); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("counted %v, want %v", got, want)
	}
}

func circuitName(t *testing.T) string {
	return fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())
}

// DoC runs run on the caller's goroutine (upstream: on one of its own).
func TestDoCRunsOnCallersGoroutine(t *testing.T) {
	var stack string
	err := DoC(context.Background(), circuitName(t), func(context.Context) error {
		buf := make([]byte, 64<<10)
		stack = string(buf[:runtime.Stack(buf, false)])
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stack, ".TestDoCRunsOnCallersGoroutine(") { // the test's frame, not run's (.func1)
		t.Fatalf("run ran on another goroutine:\n%s", stack)
	}
}

// Each outcome returns upstream's error and counts upstream's events.
func TestDoCOutcomes(t *testing.T) {
	broken := errors.New("broken")
	fallbackOK := func(context.Context, error) error { return nil }
	fallbackBroken := func(context.Context, error) error { return errors.New("no fallback") }
	for _, tc := range []struct {
		name     string
		timeout  int // ms; 0: the default
		run      func(context.Context) error
		fallback fallbackFuncC
		ctx      func() (context.Context, context.CancelFunc)
		want     error // nil, or compared by message
		counted  map[string]float64
	}{
		{name: "success", run: func(context.Context) error { return nil },
			counted: map[string]float64{"requests": 1, "success": 1}},
		{name: "failure", run: func(context.Context) error { return broken }, want: broken,
			counted: map[string]float64{"requests": 1, "errors": 1, "failure": 1}},
		{name: "fallback", run: func(context.Context) error { return broken }, fallback: fallbackOK,
			counted: map[string]float64{"requests": 1, "errors": 1, "failure": 1, "fallback-success": 1}},
		{name: "fallback fails", run: func(context.Context) error { return broken }, fallback: fallbackBroken,
			want:    errors.New("fallback failed with 'no fallback'. run error was 'broken'"),
			counted: map[string]float64{"requests": 1, "errors": 1, "failure": 1, "fallback-failure": 1}},
		{name: "timeout", timeout: 10, run: func(context.Context) error {
			time.Sleep(30 * time.Millisecond) // a slow callee, past the timeout
			return nil
		}, want: ErrTimeout, counted: map[string]float64{"requests": 1, "errors": 1, "timeout": 1}},
		{name: "deadline", run: func(ctx context.Context) error {
			<-ctx.Done()
			return broken // what the callee made of it: the context's error wins, as upstream's watcher's
		}, ctx: func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 10*time.Millisecond)
		}, want: context.DeadlineExceeded, counted: map[string]float64{"requests": 1, "context_deadline_exceeded": 1}},
		{name: "canceled", run: func(ctx context.Context) error { return nil },
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			}, want: context.Canceled, counted: map[string]float64{"requests": 1, "context_canceled": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := circuitName(t)
			if tc.timeout > 0 {
				ConfigureCommand(name, CommandConfig{Timeout: tc.timeout})
			}
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if tc.ctx != nil {
				ctx, cancel = tc.ctx()
			}
			defer cancel()
			err := DoC(ctx, name, tc.run, tc.fallback)
			if fmt.Sprint(err) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			wantCounts(t, name, tc.counted)
		})
	}
}

// Over MaxConcurrentRequests in flight a call is rejected; the slot of a
// call is free again when DoC returns (upstream freed it a moment later).
func TestDoCConcurrency(t *testing.T) {
	name := circuitName(t)
	ConfigureCommand(name, CommandConfig{MaxConcurrentRequests: 1})
	entered, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		done <- DoC(context.Background(), name, func(context.Context) error {
			close(entered)
			<-release
			return nil
		}, nil)
	}()
	<-entered
	if err := DoC(context.Background(), name, func(context.Context) error { return nil }, nil); err != ErrMaxConcurrency {
		t.Fatalf("second call in flight: %v, want %v", err, ErrMaxConcurrency)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		if err := DoC(context.Background(), name, func(context.Context) error { return nil }, nil); err != nil {
			t.Fatalf("call %d, one at a time: %v", i, err)
		}
	}
	wantCounts(t, name, map[string]float64{"requests": 1002, "errors": 1, "rejected": 1, "success": 1001})
}

// The circuit opens on the error rate, fails fast while open, and closes
// after a test call succeeds once the sleep window has passed.
func TestDoCOpensAndCloses(t *testing.T) {
	name := circuitName(t)
	ConfigureCommand(name, CommandConfig{RequestVolumeThreshold: 5, ErrorPercentThreshold: 50, SleepWindow: 50})
	fail := func(context.Context) error { return errors.New("broken") }
	ok := func(context.Context) error { return nil }
	for range 5 {
		_ = DoC(context.Background(), name, fail, nil)
	}
	wantCounts(t, name, map[string]float64{"requests": 5, "errors": 5, "failure": 5})
	ran := false
	if err := DoC(context.Background(), name, func(context.Context) error { ran = true; return nil }, nil); err != ErrCircuitOpen || ran {
		t.Fatalf("call to an open circuit: %v (ran: %v), want %v without running", err, ran, ErrCircuitOpen)
	}
	eventually(t, func() error { // the sleep window
		if err := DoC(context.Background(), name, ok, nil); err != nil {
			return err
		}
		return nil
	})
	cb, _, _ := GetCircuit(name)
	if cb.IsOpen() {
		t.Fatal("still open after a test call succeeded")
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := DoC(context.Background(), name, ok, nil); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

// A call on a known circuit starts no goroutine and allocates nothing.
func TestDoCAllocatesNothing(t *testing.T) {
	name := circuitName(t)
	run := func(context.Context) error { return nil }
	if err := DoC(context.Background(), name, run, nil); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() { _ = DoC(context.Background(), name, run, nil) }); n != 0 {
		t.Fatalf("%.1f allocations per call, want 0", n)
	}
}
