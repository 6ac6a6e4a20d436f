package service

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/example/micro-starter/pkg/discovery"
	"github.com/example/micro-starter/pkg/mtls"
	"github.com/example/micro-starter/pkg/tracing"
	"github.com/example/micro-starter/pkg/wrappers"
)

// Config is what every service is started with. Each service embeds it in
// its own config struct and adds its own flags.
type Config struct {
	Name             string // the name the service registers under; set by main, not a flag
	Registry         discovery.Config
	ServerAddress    string        // where the RPC server listens; ":0" picks a free port
	RegisterTTL      time.Duration // how long the registry keeps an instance that stopped re-registering
	RegisterInterval time.Duration // how often an instance re-registers
	RegistryAttempts int           // tries to reach the registry at start before giving up
	Drain            time.Duration // how long a stopping instance keeps serving after deregistering
	ShutdownTimeout  time.Duration // bound on each shutdown step that waits on something else
	Client           wrappers.Config
	HealthProbe      bool // check a running instance and exit, instead of serving
	// HealthAddress is where GET /health answers (Consul's HTTP check);
	// empty: the host of ServerAddress, a free port.
	HealthAddress string
	// MetricsAddress is where GET /metrics answers; empty: the host of
	// ServerAddress, a free port, published in the registry (metrics.go);
	// MetricsOff: no /metrics, and calls and requests are not counted.
	MetricsAddress string
	// Pprof serves net/http/pprof's /debug/pprof/ beside /metrics, for
	// profiling an instance under load; off by default.
	Pprof bool

	registryPasswordFile string // --registry_password_file, if given
	// TLS: mutual TLS between services (pkg/mtls); no files: plaintext.
	TLS mtls.Files
	// Tracing: --otlp_endpoint, --trace_sample_ratio, --log_format.
	Tracing tracing.Config
}

// DefaultConfig is what a service runs with when no flag or variable is set.
func DefaultConfig(name string) Config {
	return Config{
		Name:             name,
		Registry:         discovery.Default(),
		ServerAddress:    ":0",
		RegisterTTL:      10 * time.Second,
		RegisterInterval: 5 * time.Second,
		RegistryAttempts: 5,
		Drain:            2 * time.Second,
		ShutdownTimeout:  5 * time.Second,
		Client:           wrappers.DefaultConfig(),
		Tracing:          tracing.DefaultConfig(),
	}
}

// Validate reports settings that cannot work together.
func (c Config) Validate() error {
	if err := c.Registry.Validate(); err != nil {
		return err
	}
	if err := validListenAddress(c.ServerAddress); err != nil {
		return fmt.Errorf("server address: %w", err)
	}
	if c.HealthAddress != "" {
		if err := validListenAddress(c.HealthAddress); err != nil {
			return fmt.Errorf("health address: %w", err)
		}
	}
	if c.MetricsAddress != "" && c.MetricsAddress != MetricsOff {
		if err := validListenAddress(c.MetricsAddress); err != nil {
			return fmt.Errorf("metrics address: %w", err)
		}
	}
	if c.RegisterInterval <= 0 || c.RegisterTTL <= c.RegisterInterval {
		// A TTL no longer than the interval lets healthy instances expire
		// between two registrations.
		return fmt.Errorf("register interval %v must be positive and shorter than the register TTL %v", c.RegisterInterval, c.RegisterTTL)
	}
	if c.RegistryAttempts < 1 {
		return fmt.Errorf("registry attempts %d: must be at least 1", c.RegistryAttempts)
	}
	if c.Drain < 0 || c.ShutdownTimeout <= 0 {
		return fmt.Errorf("drain %v must not be negative and shutdown timeout %v must be positive", c.Drain, c.ShutdownTimeout)
	}
	if err := c.TLS.Validate(); err != nil {
		return err
	}
	if err := c.Tracing.Validate(); err != nil {
		return err
	}
	return c.Client.Validate()
}

// validListenAddress accepts host:port with a numeric port, the host
// possibly empty (all interfaces): what net.Listen binds without a lookup of
// the port's name.
func validListenAddress(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	return nil
}

// UsageError is a wrong flag or environment variable: main prints it on one
// line and exits with status 2, before anything has started.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// ExitCode is the process status for an error returned by a service's run.
func ExitCode(err error) int {
	var u *UsageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// Flags declares the settings of c on fs, with go-micro's flag names where
// go-micro has one, so that a go-micro user's flags and MICRO_* variables
// keep working.
func (c *Config) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Registry.Name, "registry", c.Registry.Name, "registry: "+strings.Join(discovery.Names, ", "))
	fs.Func("registry_address", "registry address host:port[,host:port] (default: the registry's own)", func(s string) error {
		addrs, err := discovery.ParseAddresses(s)
		c.Registry.Addresses = addrs
		return err
	})
	fs.DurationVar(&c.Registry.Timeout, "registry_timeout", c.Registry.Timeout, "bound on one registry call made at start or stop")
	fs.IntVar(&c.RegistryAttempts, "registry_attempts", c.RegistryAttempts, "tries to reach the registry at start")
	fs.Var(&c.Registry.Token, "registry_token", "Consul ACL `token` of this service (MICRO_REGISTRY_TOKEN keeps it off the command line)")
	fs.StringVar(&c.Registry.Username, "registry_username", c.Registry.Username, "etcd user of this service; its password comes from MICRO_REGISTRY_PASSWORD or --registry_password_file, never a flag")
	fs.Func("registry_password_file", "`file` holding the etcd password of --registry_username (one line)", func(path string) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		p := strings.TrimRight(string(b), "\r\n")
		if p == "" {
			return fmt.Errorf("%s: empty", path)
		}
		c.Registry.Password, c.registryPasswordFile = discovery.Secret(p), path
		return nil
	})
	fs.StringVar(&c.Registry.TLS.CA, "registry_tls_ca", c.Registry.TLS.CA, "CA (PEM) that signed the registry's certificate; any --registry_tls_* means TLS to the registry")
	fs.StringVar(&c.Registry.TLS.Cert, "registry_tls_cert", c.Registry.TLS.Cert, "client certificate (PEM) for a registry that asks for one")
	fs.StringVar(&c.Registry.TLS.Key, "registry_tls_key", c.Registry.TLS.Key, "the private key (PEM) of --registry_tls_cert")
	fs.StringVar(&c.ServerAddress, "server_address", c.ServerAddress, "RPC listen address; :0 picks a free port")
	fs.Var((*seconds)(&c.RegisterTTL), "register_ttl", "registry TTL of this instance (e.g. 10s; a bare number is seconds, as in go-micro)")
	fs.Var((*seconds)(&c.RegisterInterval), "register_interval", "re-registration interval (e.g. 5s; a bare number is seconds)")
	fs.DurationVar(&c.Drain, "shutdown_drain", c.Drain, "keep serving this long after deregistering on SIGTERM")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown_timeout", c.ShutdownTimeout, "bound on each shutdown step")
	fs.StringVar(&c.TLS.CA, "tls_ca", c.TLS.CA, "CA (PEM) of every service's certificate; with --tls_cert and --tls_key, RPC is mutual TLS")
	fs.StringVar(&c.TLS.Cert, "tls_cert", c.TLS.Cert, "this service's certificate (PEM), naming the service (DNS name, e.g. user); reloaded when the file changes")
	fs.StringVar(&c.TLS.Key, "tls_key", c.TLS.Key, "the private key (PEM) of --tls_cert")
	fs.BoolVar(&c.HealthProbe, "health_probe", false, "check that the instance is serving, then exit (container health checks): GET /health on --health_address if its port is fixed, else the gRPC health check on --server_address")
	fs.StringVar(&c.HealthAddress, "health_address", c.HealthAddress, "plain HTTP listen address of GET /health, which Consul's check asks (default: the host of --server_address, a free port)")
	fs.BoolVar(&c.Pprof, "pprof", c.Pprof, "serve /debug/pprof/ (CPU, heap and goroutine profiles) on the metrics port; off by default: profiles name functions and take CPU")
	fs.StringVar(&c.MetricsAddress, "metrics_address", c.MetricsAddress, "plain HTTP listen address of GET /metrics for Prometheus, published in the registry as metrics_address (default: the host of --server_address, a free port; off: no metrics)")
	fs.DurationVar(&c.Client.CacheTTL, "registry_cache_ttl", c.Client.CacheTTL, "how long the client uses a registry lookup before asking again (a watch keeps it fresh meanwhile)")
	fs.StringVar(&c.Client.Strategy, "selector", c.Client.Strategy, "load balancing: roundrobin, random, or hash (by the call's hash key, such as the user id the gateway sets; round robin without one)")
	fs.IntVar(&c.Client.Retries, "client_retries", c.Client.Retries, "retries of a failed call, each on the next instance")
	fs.DurationVar(&c.Client.RequestTimeout, "client_request_timeout", c.Client.RequestTimeout, "timeout of a whole call, retries included")
	fs.DurationVar(&c.Client.AttemptTimeout, "client_attempt_timeout", c.Client.AttemptTimeout, "timeout of one attempt on one instance")
	fs.IntVar(&c.Client.Breaker.MaxConcurrent, "breaker_max_concurrent", c.Client.Breaker.MaxConcurrent, "calls in flight per endpoint before the breaker rejects")
	fs.IntVar(&c.Client.Breaker.VolumeThreshold, "breaker_volume", c.Client.Breaker.VolumeThreshold, "calls in 10 s before the breaker may open")
	fs.IntVar(&c.Client.Breaker.ErrorPercent, "breaker_error_percent", c.Client.Breaker.ErrorPercent, "percentage of failed calls that opens the breaker")
	fs.DurationVar(&c.Client.Breaker.SleepWindow, "breaker_sleep", c.Client.Breaker.SleepWindow, "how long an open breaker rejects before testing again")
	c.Tracing.Flags(fs)
}

// registryPasswordEnv holds etcd's password. A password is never a flag:
// a command line is visible to every user of the machine.
const registryPasswordEnv = "MICRO_REGISTRY_PASSWORD"

// readRegistryPassword takes the registry password from
// MICRO_REGISTRY_PASSWORD unless --registry_password_file gave one: both
// set is an error, since either could be the one the operator meant.
func (c *Config) readRegistryPassword(getenv func(string) string) error {
	p := getenv(registryPasswordEnv)
	if p == "" {
		return nil
	}
	if c.registryPasswordFile != "" {
		return &UsageError{fmt.Errorf("registry password: both %s and --registry_password_file (or MICRO_REGISTRY_PASSWORD_FILE) are set: use one", registryPasswordEnv)}
	}
	c.Registry.Password = discovery.Secret(p)
	return nil
}

// parseFlags parses args into fs, then fills every flag not given on the command
// line from its environment variable: MICRO_ and the flag name in capitals,
// unless env names another. Errors are UsageErrors.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string, env map[string]string) error {
	fs.SetOutput(io.Discard) // errors are returned, and printed once by main
	if err := fs.Parse(args); err != nil {
		return &UsageError{err}
	}
	if fs.NArg() > 0 {
		return &UsageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		name, ok := env[f.Name]
		if !ok {
			name = "MICRO_" + strings.ToUpper(f.Name)
		}
		if v := getenv(name); v != "" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = &UsageError{fmt.Errorf("%s=%q: %v", name, v, serr)}
			}
		}
	})
	return err
}

// usage writes fs's flags, for -h.
func usage(fs *flag.FlagSet, w io.Writer) {
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// seconds is a duration flag that also takes a bare number of seconds, the
// unit of go-micro's --register_ttl and MICRO_REGISTER_TTL.
type seconds time.Duration

func (s *seconds) String() string { return time.Duration(*s).String() }

func (s *seconds) Set(v string) error {
	if n, err := strconv.Atoi(v); err == nil {
		*s = seconds(time.Duration(n) * time.Second)
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("want a duration such as 10s, or a number of seconds")
	}
	*s = seconds(d)
	return nil
}
