// Package wrappers builds the go-micro client every service uses to call
// another: load balancing, a circuit breaker, and timeouts with retries that
// fail over to another instance. NewClient is the one place the chain is
// assembled.
package wrappers

import (
	"context"
	"fmt"
	"time"

	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"

	"github.com/example/micro-starter/pkg/discovery"
	"github.com/example/micro-starter/pkg/mtls"
)

// Config holds every client setting a service exposes as a flag.
type Config struct {
	Strategy       string        // "roundrobin", "random" or "hash"
	Retries        int           // attempts after the first, each on the next instance
	RequestTimeout time.Duration // the whole call, all attempts together
	AttemptTimeout time.Duration // one attempt on one instance
	CacheTTL       time.Duration // how long a registry lookup is used; a watch keeps it fresh meanwhile
	Breaker        BreakerConfig
	// TLS, if set, makes every call mutual TLS: the callee must present a
	// certificate naming the service called (see perService). nil: plaintext.
	TLS *mtls.Identity
}

// DefaultConfig suits calls between services on one network: a dead
// instance costs one refused connection, a hung one AttemptTimeout, and
// three attempts fit inside RequestTimeout.
func DefaultConfig() Config {
	return Config{
		Strategy:       "roundrobin",
		Retries:        2,
		RequestTimeout: 5 * time.Second,
		AttemptTimeout: 1500 * time.Millisecond,
		CacheTTL:       time.Minute, // go-micro's
		Breaker:        DefaultBreakerConfig(),
	}
}

// Validate rejects settings that would make calls fail or never fail over.
func (c Config) Validate() error {
	if !strategies[c.Strategy] {
		return fmt.Errorf("unknown load-balancing strategy %q: want roundrobin, random or hash", c.Strategy)
	}
	if c.Retries < 0 {
		return fmt.Errorf("client retries %d: must be 0 or more", c.Retries)
	}
	if c.CacheTTL <= 0 {
		return fmt.Errorf("registry cache TTL %v: must be positive", c.CacheTTL)
	}
	if c.AttemptTimeout <= 0 || c.RequestTimeout <= 0 {
		return fmt.Errorf("client timeouts must be positive (request %v, attempt %v)", c.RequestTimeout, c.AttemptTimeout)
	}
	if c.AttemptTimeout > c.RequestTimeout {
		return fmt.Errorf("client attempt timeout %v is longer than the request timeout %v: no retry could ever run", c.AttemptTimeout, c.RequestTimeout)
	}
	return c.Breaker.Validate()
}

// NewClient returns the client services call each other with, with extra
// options such as a logger. The wrappers are listed outermost first: what
// fails in the caller fails before anything else sees the call, and the
// breaker sees one logical call, retries included, so a single dead instance
// that fail-over hides never counts against the circuit.
//
// Requests are encoded by CallerChecks with the gRPC client's default codecs
// (proto and JSON content types); a codec given in extra for one of those
// content types is used for answers only.
func NewClient(reg registry.Registry, c Config, extra ...client.Option) (client.Client, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return newClient(reg, c, NewOutliers(outlierFailures, outlierCooldown), extra...), nil
}

func newClient(reg registry.Registry, c Config, outliers *Outliers, extra ...client.Option) client.Client {
	b := newBalance(c.Strategy, outliers)
	// The selector orders every call's instances itself: the balancer
	// then adds no select option to a call (an allocation each).
	return chain(newOrderedBase(reg, c, outliers, b.order, extra...),
		CallerChecks(),
		Breaker(c.Breaker, c.RequestTimeout),
		b.wrapper(true),
	)
}

// newBase is the innermost layer: go-micro's gRPC client with the cached,
// watched registry, retries that fail over, and a timeout per attempt. Its
// selector orders instances at random, as go-micro's does.
func newBase(reg registry.Registry, c Config, outliers *Outliers, extra ...client.Option) client.Client {
	return newOrderedBase(reg, c, outliers, nil, extra...)
}

// newOrderedBase is newBase with the selector's strategy; nil: random.
func newOrderedBase(reg registry.Registry, c Config, outliers *Outliers, order selector.Strategy, extra ...client.Option) client.Client {
	selOpts := []selector.Option{selector.Registry(reg), cacheTTL(c.CacheTTL)}
	if order != nil {
		selOpts = append(selOpts, selector.SetStrategy(order))
	}
	// gRPC, not go-micro's default HTTP transport: on its pooled connections
	// a call now and then gets no answer until a 5 s timeout, which is also
	// the only bound it puts on an attempt (TestNoStallOnPooledConnections).
	opts := append([]client.Option{
		client.Registry(reg),
		// The selector caches lookups and keeps them fresh with a registry
		// watch; it hands out its lists without copying them.
		client.Selector(discovery.NewSelector(selOpts...)),
		// Services here don't publish events; the memory broker opens no port.
		client.Broker(broker.NewMemoryBroker()),
		client.Retries(c.Retries),
		client.Retry(RetryTransportErrors),
		client.Backoff(failoverBackoff),
		client.RequestTimeout(c.RequestTimeout),
		client.DialTimeout(c.AttemptTimeout),
		// Record sees what the attempt returned, bounded by the attempt
		// timeout, which the client applies innermost.
		client.WrapCall(outliers.Record),
		withAttemptTimeout(c.AttemptTimeout),
	}, extra...)
	if c.TLS == nil {
		return newRPCClient(nil, opts...)
	}
	return newPerService(c.TLS, opts)
}

// An instance that failed this many calls in a row goes last in every
// call's order for the cooldown.
const (
	outlierFailures = 3
	outlierCooldown = 10 * time.Second
)

// cacheTTL sets the TTL of the selector's registry cache, which go-micro's
// selector (selector/default.go, newCache) and ours read from its context.
func cacheTTL(d time.Duration) selector.Option {
	return func(o *selector.Options) {
		if o.Context == nil {
			o.Context = context.Background()
		}
		o.Context = context.WithValue(o.Context, "selector_ttl", d) //nolint:staticcheck // go-micro's key
	}
}

// chain applies wrappers so that the first one listed is the outermost.
func chain(c client.Client, ws ...client.Wrapper) client.Client {
	for i := len(ws) - 1; i >= 0; i-- {
		c = ws[i](c)
	}
	return c
}
