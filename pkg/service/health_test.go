package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go-micro.dev/v4/server"

	"github.com/example/micro-starter/internal/poll"
)

// TestHealthFollowsState: GET /health (what Consul's check and
// --health_probe ask) and the gRPC health check answer serving only while
// the instance is registered, not draining, and its handlers not stuck.
func TestHealthFollowsState(t *testing.T) {
	c := outageConfig()
	c.ShutdownTimeout = 200 * time.Millisecond // bounds each registration while the registry is down
	c.HealthAddress = closedAddress(t)         // a fixed port, which the probe is given
	c.ServerAddress = closedAddress(t)
	c.Drain = 2 * time.Second // long enough to ask during the drain
	// Handlers are stuck once one has run for twice this with none finishing.
	c.Client.RequestTimeout, c.Client.AttemptTimeout, c.Client.Retries = 300*time.Millisecond, 300*time.Millisecond, 0
	reg := newOutageRegistry(t)
	reg.setDown(true)
	svc := mustNewOn(t, c, reg)
	h := &Echo{hold: make(chan struct{})}
	mustHandle(t, svc, h)
	r := start(t, svc)

	health := func(want int) func() error {
		return func() error {
			rsp, err := http.Get("http://" + c.HealthAddress + "/health")
			if err != nil {
				return err
			}
			defer rsp.Body.Close()
			body, _ := io.ReadAll(rsp.Body)
			if rsp.StatusCode != want {
				return fmt.Errorf("GET /health: %d %q, want %d", rsp.StatusCode, body, want)
			}
			return nil
		}
	}
	// Both endpoints answer the same state.
	both := func(serving bool) func() error {
		want := map[bool]int{true: http.StatusOK, false: http.StatusServiceUnavailable}[serving]
		return func() error {
			if err := health(want)(); err != nil {
				return err
			}
			err := ProbeGRPC(c.ServerAddress, nil)
			if serving && err != nil {
				return err
			}
			if !serving && (err == nil || !strings.Contains(err.Error(), "NOT_SERVING")) {
				return fmt.Errorf("gRPC health check: %v, want NOT_SERVING", err)
			}
			if err := probeInstance(c); (err == nil) != serving {
				return fmt.Errorf("--health_probe: %v, want serving=%v", err, serving)
			}
			return nil
		}
	}

	// Not registered yet: its registration fails.
	poll.Eventually(t, 10*time.Second, both(false))
	reg.setDown(false)
	poll.Eventually(t, 10*time.Second, both(true))

	// A call whose handler never returns: its caller gives up after the
	// request timeout; the instance is stuck once it has run for twice that.
	if err := callEcho(svc); err == nil {
		t.Fatal("call to a held handler succeeded")
	}
	poll.Eventually(t, 5*time.Second, both(false))
	close(h.hold)
	poll.Eventually(t, 5*time.Second, both(true))

	r.cancel()
	poll.Eventually(t, time.Second, both(false)) // draining, still answering RPCs
	r.mustReturn(t, 15*time.Second)
}

// TestInFlightStuck: stuck means handlers in flight and none finished for
// longer than the bound; one slow handler among others that finish is not.
func TestInFlightStuck(t *testing.T) {
	const bound = time.Minute
	var f inFlight
	release := make(chan struct{})
	done := make(chan struct{})
	slow := f.wrap(func(context.Context, server.Request, interface{}) error { <-release; return nil })
	quick := f.wrap(func(context.Context, server.Request, interface{}) error { return nil })
	later := time.Now().Add(2 * bound)

	if f.stuck(later, bound) {
		t.Fatal("stuck with nothing in flight")
	}
	go func() { _ = slow(context.Background(), fakeRequest{}, nil); close(done) }()
	poll.Eventually(t, 2*time.Second, func() error {
		if f.n.Load() != 1 {
			return errors.New("handler not started")
		}
		return nil
	})
	if f.stuck(time.Now(), bound) {
		t.Error("stuck as soon as a handler started")
	}
	if !f.stuck(later, bound) {
		t.Error("not stuck after a handler ran for twice the bound")
	}
	// The health check is not counted: it would hide a stuck instance.
	progress := f.progress.Load()
	_ = f.wrap(func(context.Context, server.Request, interface{}) error { return nil })(context.Background(), fakeRequest{endpoint: healthEndpoint}, nil)
	if f.progress.Load() != progress {
		t.Error("the health check counted as progress")
	}
	// Another call finishes while the slow one runs: the instance works.
	_ = quick(context.Background(), fakeRequest{}, nil)
	if f.stuck(time.Now().Add(bound/2), bound) {
		t.Error("stuck although a handler has just finished")
	}
	close(release)
	<-done
	if f.stuck(later, bound) {
		t.Error("stuck with nothing in flight")
	}
}

type fakeRequest struct {
	server.Request
	endpoint string
}

func (r fakeRequest) Endpoint() string { return r.endpoint }
