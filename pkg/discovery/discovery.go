// Package discovery turns the --registry and --registry_address settings
// into a go-micro registry, and checks that the registry answers.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-micro/plugins/v4/registry/consul"
	"go-micro.dev/v4/registry"
)

// Names lists the registries a service can be started with, in the order
// they are shown to a user who picked a wrong one.
var Names = []string{"consul", "etcd", "mdns", "memory"}

// Config selects a registry. The zero value is not valid; use Default.
type Config struct {
	Name      string   // one of Names
	Addresses []string // host:port of the registry; empty means the plugin's default
	Timeout   time.Duration

	// Credentials, used by every call: registration, renewal, lookups and
	// watches. Consul takes a Token, etcd a Username and Password.
	Token    Secret
	Username string
	Password Secret
	TLS      TLSFiles
}

// Default needs nothing installed: mDNS finds services on the local network.
func Default() Config {
	return Config{Name: "mdns", Timeout: 5 * time.Second}
}

// ParseAddresses splits "host:port[,host:port]" and rejects empty parts, so
// a typo such as "a:1,,b:2" is reported instead of silently ignored.
func ParseAddresses(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var addrs []string
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			return nil, fmt.Errorf("registry address %q: empty entry", s)
		}
		addrs = append(addrs, a)
	}
	return addrs, nil
}

// Validate reports a configuration that New would reject.
func (c Config) Validate() error {
	if !slices.Contains(Names, c.Name) {
		return fmt.Errorf("unknown registry %q: want one of %s", c.Name, strings.Join(Names, ", "))
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("registry timeout %v: must be positive", c.Timeout)
	}
	return c.validateCredentials()
}

// HasServer reports whether the registry is a server to reach (Consul,
// etcd) rather than something every process does itself (mDNS, memory).
func (c Config) HasServer() bool { return c.Name == "consul" || c.Name == "etcd" }

// New builds the registry named by c, with extra options such as a logger.
// It does not contact the registry; see Ping for that. With etcd and
// Consul, registration goes through our own client (see etcdRegistration
// and consulRegistration).
func New(c Config, extra ...registry.Option) (registry.Registry, error) {
	r, err := newPlugin(c, extra...)
	if err != nil {
		return nil, err
	}
	switch c.Name {
	case "etcd":
		return newEtcdRegistration(r, c)
	case "consul":
		return newConsulRegistration(r, c)
	}
	return r, nil
}

// newPlugin builds the registry named by c from go-micro's plugins.
func newPlugin(c Config, extra ...registry.Option) (registry.Registry, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	opts := append([]registry.Option{registry.Timeout(c.Timeout)}, extra...)
	if len(c.Addresses) > 0 {
		opts = append(opts, registry.Addrs(c.Addresses...))
	}
	switch c.Name {
	case "consul":
		// The timeout is deliberately not passed to Consul: the plugin would
		// apply it to the watcher's blocking queries (which wait minutes by
		// design) and every watch would fail. Ping and the service lifecycle
		// bound their own calls instead.
		cc, err := consulConfig(c)
		if err != nil {
			return nil, err
		}
		return consul.NewRegistry(append(extra, consul.Config(cc), registry.Addrs(c.Addresses...))...), nil
	case "etcd":
		return newEtcdPlugin(c, opts...)
	case "mdns":
		// go-micro's own mDNS registry. Every lookup waits its whole timeout
		// for answers, so it keeps its short default.
		return registry.NewRegistry(extra...), nil
	default: // "memory": only useful when every service runs in one process (tests).
		return registry.NewMemoryRegistry(opts...), nil
	}
}

// ErrUnreachable is returned by Ping when the registry never answered.
var ErrUnreachable = errors.New("registry unreachable")

// Ping lists services until the registry answers, trying attempts times with
// each try bounded by c.Timeout and a pause of wait between tries. It never
// blocks longer than about attempts*(c.Timeout+wait), even against a registry
// that accepts connections and then stops answering.
func Ping(ctx context.Context, c Config, r registry.Registry, attempts int, wait time.Duration, logf func(format string, args ...any)) error {
	if !c.HasServer() {
		return nil
	}
	var lastErr error
	for i := 1; i <= attempts; i++ {
		lastErr = Call(ctx, c.Timeout, func() error {
			_, err := r.ListServices()
			return err
		})
		if lastErr == nil {
			return nil
		}
		if IsDenied(lastErr) {
			return fmt.Errorf("%w: %s at %s: %s", ErrDenied, c.Name, c.addressString(), oneLine(lastErr))
		}
		logf("registry %s at %s not answering (attempt %d of %d): %v", c.Name, c.addressString(), i, attempts, lastErr)
		if i == attempts {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s at %s: %v", ErrUnreachable, c.Name, c.addressString(), ctx.Err())
		case <-time.After(wait):
		}
	}
	return fmt.Errorf("%w: %s at %s after %d attempts: %s", ErrUnreachable, c.Name, c.addressString(), attempts, oneLine(lastErr))
}

// oneLine is err's message on one line: a registry's answer quoted in an
// error may hold line breaks (Consul's "Client sent an HTTP request to an
// HTTPS server.\n"), and a failed start is one line on stderr.
func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// Call runs fn, a registry call that may block forever (the plugins do not
// all bound their own calls), and gives up waiting after timeout. fn keeps
// running in the background if it does not return.
func Call(ctx context.Context, timeout time.Duration, fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("no answer within %v", timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c Config) addressString() string {
	if len(c.Addresses) == 0 {
		return "default address"
	}
	return strings.Join(c.Addresses, ",")
}

// NoInstanceError is Ready's answer when the registry answered and lists
// no instance of Service.
type NoInstanceError struct{ Service string }

func (e *NoInstanceError) Error() string { return "service " + e.Service + ": no instance registered" }

// Ready reports whether the registry answers within timeout and lists at
// least one instance of each of services. A registry that answered without
// an instance gives a *NoInstanceError; any other error means the registry
// did not answer, or failed.
func Ready(ctx context.Context, r registry.Registry, timeout time.Duration, services ...string) error {
	return Call(ctx, timeout, func() error {
		for _, name := range services {
			svcs, err := r.GetService(name)
			if err != nil && !errors.Is(err, registry.ErrNotFound) {
				return fmt.Errorf("registry: %w", err)
			}
			if countNodes(svcs) == 0 {
				return &NoInstanceError{Service: name}
			}
		}
		return nil
	})
}

func countNodes(svcs []*registry.Service) int {
	n := 0
	for _, s := range svcs {
		n += len(s.Nodes)
	}
	return n
}
