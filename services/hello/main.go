// Command hello greets users of the user service over go-micro RPC.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/example/micro-starter/pkg/service"
	hellopb "github.com/example/micro-starter/services/hello/proto"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "hello: %v\n", err)
		os.Exit(service.ExitCode(err))
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg := service.DefaultConfig("hello")
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	cfg.Flags(fs)
	if err := service.Parse(fs, args[1:], getenv, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			service.Usage(fs, stdout)
			return nil
		}
		return err
	}
	if cfg.HealthProbe {
		return service.ProbeGRPC(cfg.ServerAddress)
	}
	log := slog.New(slog.NewTextHandler(stdout, nil))

	svc, err := service.New(cfg, log)
	if err != nil {
		return err
	}
	if err := hellopb.RegisterHelloServiceHandler(svc.Server(), newHandler(svc.Client(), svc.Instance())); err != nil {
		return fmt.Errorf("register handler: %w", err)
	}
	return svc.Run(ctx)
}
