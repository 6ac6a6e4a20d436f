package wrappers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	hystrixgo "github.com/afex/hystrix-go/hystrix"
	"github.com/go-micro/plugins/v4/wrapper/breaker/hystrix"
	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
)

// BreakerConfig tunes the circuit of each service endpoint.
type BreakerConfig struct {
	// MaxConcurrent is the number of calls in flight per endpoint before new
	// ones are rejected. hystrix-go counts rejections as failures, so a
	// value near the real load opens the circuit on load alone.
	MaxConcurrent int
	// VolumeThreshold is the number of calls in a 10 s window before the
	// error rate is considered at all.
	VolumeThreshold int
	// ErrorPercent opens the circuit once reached within the window.
	ErrorPercent int
	// SleepWindow is how long an open circuit rejects calls before it lets
	// one through to test the service again.
	SleepWindow time.Duration
}

// DefaultBreakerConfig opens a circuit when three quarters of at least 16
// calls in 10 s failed, and tests the service again after 5 s.
//
// The breaker is for a service failing as a whole; one sick instance is the
// outlier detector's (outlier.go). Until it ejects the sick instance, up to
// half the calls of a two-instance service fail, so at 50 % the circuit
// would open for the whole service (TestSickInstanceIsEjected). The volume
// is below 20 so that a circuit opens within 20 failures even with calls in
// flight at 500 calls/s (bench/chaos T5).
func DefaultBreakerConfig() BreakerConfig {
	return BreakerConfig{MaxConcurrent: 1000, VolumeThreshold: 16, ErrorPercent: 75, SleepWindow: 5 * time.Second}
}

// Validate rejects settings hystrix-go would silently misread.
func (c BreakerConfig) Validate() error {
	if c.MaxConcurrent < 1 || c.VolumeThreshold < 1 || c.SleepWindow < time.Millisecond {
		return fmt.Errorf("breaker: max concurrent %d, volume %d and sleep window %v must be positive", c.MaxConcurrent, c.VolumeThreshold, c.SleepWindow)
	}
	if c.ErrorPercent < 1 || c.ErrorPercent > 100 {
		return fmt.Errorf("breaker: error percent %d must be between 1 and 100", c.ErrorPercent)
	}
	return nil
}

// Breaker wraps a client in go-micro's hystrix breaker with one circuit per
// service endpoint ("user.UserService.Get"). requestTimeout is the client's
// own budget for a call, retries included: the breaker's timeout is set
// above it, so that a call the client would still finish never counts as a
// breaker timeout. hystrix-go is our fork (third_party/hystrix-go): it runs
// the call on the caller's goroutine and never cuts it short; the caller's
// context bounds it.
//
// Only failures of the callee and the network count (Classify): a 4xx
// (bad input, not found) means the service worked, and a failure of the
// caller's own (a request it could not encode, its context ending) says
// nothing about the service; neither opens a circuit. When a circuit is
// open the call fails at once with a 503.
func Breaker(c BreakerConfig, requestTimeout time.Duration) client.Wrapper {
	settings := hystrixgo.CommandConfig{
		Timeout:                int((requestTimeout + time.Second).Milliseconds()),
		MaxConcurrentRequests:  c.MaxConcurrent,
		RequestVolumeThreshold: c.VolumeThreshold,
		ErrorPercentThreshold:  c.ErrorPercent,
		SleepWindow:            int(c.SleepWindow.Milliseconds()),
	}
	inner := hystrix.NewClientWrapper(hystrix.WithFilter(notTheCallee))
	return func(next client.Client) client.Client {
		return &breaker{Client: inner(next), settings: settings, configured: map[[2]string]string{}}
	}
}

type breaker struct {
	client.Client
	settings hystrixgo.CommandConfig

	mu         sync.RWMutex
	configured map[[2]string]string // service, endpoint -> circuit name
}

func (b *breaker) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	return breakerError(b.circuit(req.Service(), req.Endpoint()), b.Client.Call(ctx, req, rsp, opts...))
}

// circuit is the name of the circuit of an endpoint. hystrix-go keeps
// circuits in package state and creates them with its global defaults on
// first use; ours are configured before that happens. Looked up by its
// parts, so that a call builds no name.
func (b *breaker) circuit(service, endpoint string) string {
	key := [2]string{service, endpoint}
	b.mu.RLock()
	name, ok := b.configured[key]
	b.mu.RUnlock()
	if ok {
		return name
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if name, ok = b.configured[key]; !ok {
		name = service + "." + endpoint
		hystrixgo.ConfigureCommand(name, b.settings)
		b.configured[key] = name
	}
	return name
}

// notTheCallee reports errors the hystrix filter must not count. hystrix-go
// then counts the call as a success; CallerChecks keeps the most common
// caller failures out of the breaker altogether.
func notTheCallee(ctx context.Context, err error) bool {
	f := Classify(ctx, err)
	return f == NoFault || f == CallerFault
}

// breakerError turns hystrix-go's plain errors into go-micro errors, so that
// callers and the gateway map them like any other.
func breakerError(circuit string, err error) error {
	if err == nil {
		return nil // before errors.Is, which would box hystrix-go's error values
	}
	switch {
	case errors.Is(err, hystrixgo.ErrCircuitOpen):
		return merrors.New(clientID, fmt.Sprintf("%s: circuit open", circuit), 503)
	case errors.Is(err, hystrixgo.ErrMaxConcurrency):
		return merrors.New(clientID, fmt.Sprintf("%s: too many calls in flight", circuit), 503)
	case errors.Is(err, hystrixgo.ErrTimeout):
		return merrors.Timeout(clientID, "%s: breaker timeout", circuit)
	default:
		return err
	}
}
