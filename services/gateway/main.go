// Command gateway serves an HTTP/JSON API for people and curl, and calls the
// user and hello services by name through the registry.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"go-micro.dev/v4/server"

	"github.com/example/micro-starter/pkg/service"
	hellopb "github.com/example/micro-starter/services/hello/proto"
	userpb "github.com/example/micro-starter/services/user/proto"
)

type config struct {
	service.Config
	HTTP httpConfig
}

// Validate reports settings that cannot work together.
func (c config) Validate() error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	return c.HTTP.validate(c.Client.RequestTimeout)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "gateway: %v\n", err)
		os.Exit(service.ExitCode(err))
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg := config{Config: service.DefaultConfig("gateway"), HTTP: defaultHTTPConfig()}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	cfg.Flags(fs)
	env := map[string]string{}
	cfg.HTTP.flags(fs, env)
	if err := service.Parse(fs, args[1:], getenv, env); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			service.Usage(fs, stdout)
			return nil
		}
		return err
	}
	if cfg.HealthProbe {
		return service.ProbeHTTP(cfg.HTTP.Address, "/readyz")
	}
	log := slog.New(slog.NewTextHandler(stdout, nil))

	// Settings first, so a typo is a usage error even when the port is taken;
	// then bind, so a taken port is an error before anything registers.
	if err := cfg.Validate(); err != nil {
		return &service.UsageError{Err: err}
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Address)
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	defer ln.Close()

	// The HTTP address is published in the registry beside the RPC one, so
	// tools reading the registry can find the API.
	svc, err := service.New(cfg.Config, log, server.Metadata(map[string]string{"http_address": ln.Addr().String()}))
	if err != nil {
		return err
	}
	api := &API{
		users: userpb.NewUserService("user", svc.Client()),
		hello: hellopb.NewHelloService("hello", svc.Client()),
		ready: readiness(svc.Registry(), cfg.Registry.Timeout, svc.Draining, "user", "hello"),
		log:   log,
	}
	srv := newHTTPServer(cfg.HTTP, api.Handler())

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	serveErr := make(chan error, 1)
	go func() {
		err := srv.Serve(ln)
		if !errors.Is(err, http.ErrServerClosed) {
			cancel() // stop the service too: a gateway without HTTP is useless
		}
		serveErr <- err
	}()
	log.Info("http listening", "address", ln.Addr().String())

	// Run returns after deregistering and draining; HTTP keeps serving until then.
	runErr := svc.Run(ctx)
	shutdownCtx, done := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer done()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Error("http shutdown", "err", err)
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return errors.Join(runErr, fmt.Errorf("http serve: %w", err))
	}
	return runErr
}
