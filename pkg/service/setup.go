package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/example/micro-starter/pkg/tracing"
)

// Main is the whole of a service's main function: it calls run with the
// process's arguments, environment and stdout, cancels run's context on
// SIGINT or SIGTERM, and if run fails prints one line on stderr, prefixed
// with name, and exits with ExitCode. Call it from main only.
func Main(name string, run func(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(ExitCode(err))
	}
}

// Setup is the start every service's run shares: the flags of Config and
// the service's own, -h, --health_probe and the logger. A service's run
// calls Parse first, then does its own wiring:
//
//	var usersFile string
//	cfg, log, done, err := service.Setup{
//		Name:  "user",
//		Flags: func(fs *flag.FlagSet) { fs.StringVar(&usersFile, "users_file", "", "JSON file of users") },
//	}.Parse(args, getenv, stdout)
//	if done {
//		return err
//	}
type Setup struct {
	Name string // the name the service registers under

	// Flags declares the service's own flags on fs, beside those of Config;
	// nil if it has none.
	Flags func(fs *flag.FlagSet)

	// Env names the environment variable of each of the service's own flags
	// that is not MICRO_ and the flag's name in capitals, such as
	// {"http_address": "HTTP_ADDRESS"}.
	Env map[string]string

	// Check reports a wrong value or combination of the service's own
	// settings, given the shared ones (such as a timeout that must exceed
	// cfg.Client.RequestTimeout); nil if there is nothing to check. Its
	// error becomes a UsageError.
	Check func(cfg Config) error

	// Probe is what --health_probe checks, with the settings parsed; nil
	// asks the gRPC health check on --server_address (ProbeGRPC), under
	// mutual TLS with the --tls_* flags. A service with an HTTP port may
	// ask it instead, e.g. ProbeHTTP(addr, "/readyz").
	Probe func(Config) error
}

// Parse reads args (args[0] is the program) and the environment through
// getenv into the service's Config and own flags, then:
//   - with -h or --help it writes the flags to stdout;
//   - with --health_probe it runs the probe;
//   - with a wrong or inconsistent setting it returns a UsageError
//     (exit status 2) before anything has started.
//
// In each of these cases done is true and run should return err at once
// (nil after -h or a passing probe). Otherwise Parse returns the checked
// settings and a logger writing to stdout.
func (s Setup) Parse(args []string, getenv func(string) string, stdout io.Writer) (cfg Config, log *slog.Logger, done bool, err error) {
	cfg = DefaultConfig(s.Name)
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	cfg.Flags(fs)
	if s.Flags != nil {
		s.Flags(fs)
	}
	if err := parseFlags(fs, args[1:], getenv, s.Env); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(fs, stdout)
			return cfg, nil, true, nil
		}
		return cfg, nil, true, err
	}
	if err := cfg.readRegistryPassword(getenv); err != nil {
		return cfg, nil, true, err
	}
	if cfg.HealthProbe {
		probe := s.Probe
		if probe == nil {
			probe = probeInstance
		}
		return cfg, nil, true, probe(cfg)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, nil, true, &UsageError{err}
	}
	if s.Check != nil {
		if err := s.Check(cfg); err != nil {
			return cfg, nil, true, &UsageError{err}
		}
	}
	heapProfiling(cfg.Pprof && cfg.MetricsAddress != MetricsOff)
	return cfg, tracing.NewLogger(stdout, cfg.Tracing.LogFormat), false, nil
}

// heapProfiling turns the runtime's sampling of allocations for heap
// profiles off unless this instance serves them (--pprof). Linked in for
// --pprof, it samples every 512 KiB allocated by default: a stack walk
// each, and under load a table of the stacks seen that holds ~0.2 MiB per
// process that nothing reads. Called once, before the instance starts.
func heapProfiling(served bool) {
	if !served {
		runtime.MemProfileRate = 0
	}
}
