package service

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/example/micro-starter/internal/poll"
)

// TestProbeGRPCFollowsRegistration: --health_probe passes only while the
// instance is registered and not draining. A probe that only connects
// would pass as soon as the port is bound, before the instance is in the
// registry, and during the drain.
func TestProbeGRPCFollowsRegistration(t *testing.T) {
	c := outageConfig()
	c.ServerAddress = closedAddress(t)         // a fixed port, which the probe is given
	c.ShutdownTimeout = 200 * time.Millisecond // bounds each registration while the registry is down
	c.Drain = 2 * time.Second                  // long enough to probe during the drain
	reg := newOutageRegistry(t)
	reg.setDown(true)
	svc := mustNewOn(t, c, reg)
	r := start(t, svc)

	notServing := func() error {
		err := ProbeGRPC(c.ServerAddress, nil)
		if err == nil {
			return poll.Final(errors.New("probe passed, want NOT_SERVING"))
		}
		if !strings.Contains(err.Error(), "NOT_SERVING") {
			return err // not answering yet
		}
		return nil
	}
	// Serving RPCs, but its registration failed.
	poll.Eventually(t, 10*time.Second, notServing)

	reg.setDown(false)
	poll.Eventually(t, 10*time.Second, func() error { return ProbeGRPC(c.ServerAddress, nil) })
	if err := registered(svc, 1); err != nil {
		t.Fatalf("probe passed, but: %v", err)
	}

	r.cancel()
	poll.Eventually(t, 2*time.Second, notServing) // draining, still answering
	r.mustReturn(t, 15*time.Second)
}

func TestProbeGRPCFailures(t *testing.T) {
	_, closed, _ := net.SplitHostPort(closedAddress(t))
	for _, listen := range []string{":" + closed, ":0", "nonsense"} {
		if err := ProbeGRPC(listen, nil); err == nil {
			t.Errorf("ProbeGRPC(%q) = nil, want an error", listen)
		}
	}
}

func TestProbeHTTP(t *testing.T) {
	for _, tc := range []struct {
		status int
		ok     bool
	}{
		{http.StatusOK, true},
		{http.StatusServiceUnavailable, false},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/readyz" {
				http.NotFound(w, r)
				return
			}
			w.WriteHeader(tc.status)
		}))
		_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
		if err := ProbeHTTP(":"+port, "/readyz"); (err == nil) != tc.ok {
			t.Errorf("ProbeHTTP with status %d = %v, want ok=%v", tc.status, err, tc.ok)
		}
		srv.Close()
	}
}
