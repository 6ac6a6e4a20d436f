// Command user serves the demo user directory over go-micro RPC.
package main

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/example/micro-starter/pkg/service"
	userpb "github.com/example/micro-starter/services/user/proto"
)

//go:embed users.json
var defaultUsers []byte

type config struct {
	service.Config
	UsersFile string // empty: the users.json built into the binary
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "user: %v\n", err)
		os.Exit(service.ExitCode(err))
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg := config{Config: service.DefaultConfig("user")}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	cfg.Flags(fs)
	fs.StringVar(&cfg.UsersFile, "users_file", "", "JSON file of users (default: the built-in demo users)")
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

	dir, err := loadDirectory(cfg.UsersFile)
	if err != nil {
		return err
	}
	svc, err := service.New(cfg.Config, log)
	if err != nil {
		return err
	}
	h := &Handler{dir: dir, instance: svc.Instance()}
	if err := userpb.RegisterUserServiceHandler(svc.Server(), h); err != nil {
		return fmt.Errorf("register handler: %w", err)
	}
	return svc.Run(ctx)
}

func loadDirectory(path string) (*Directory, error) {
	if path == "" {
		return LoadDirectory(bytes.NewReader(defaultUsers))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, &service.UsageError{Err: fmt.Errorf("users file: %w", err)}
	}
	defer f.Close()
	dir, err := LoadDirectory(f)
	if err != nil {
		return nil, &service.UsageError{Err: fmt.Errorf("users file %s: %w", path, err)}
	}
	return dir, nil
}
