package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	merrors "go-micro.dev/v4/errors"

	"github.com/example/micro-starter/pkg/service"
	userpb "github.com/example/micro-starter/services/user/proto"
)

// sickUser runs a stand-in registered as "user" whose every call fails with
// a 500: a sick instance (T4, T5) without a test hook in the real service.
func sickUser(args []string) error {
	cfg := service.DefaultConfig("user")
	fs := flag.NewFlagSet("sick-user", flag.ContinueOnError)
	cfg.Flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	svc, err := service.New(cfg, slog.New(slog.NewTextHandler(os.Stdout, nil)))
	if err != nil {
		return err
	}
	if err := userpb.RegisterUserServiceHandler(svc.Server(), sick{}); err != nil {
		return fmt.Errorf("register handler: %w", err)
	}
	return svc.Run(ctx)
}

type sick struct{}

func (sick) Get(context.Context, *userpb.GetRequest, *userpb.GetResponse) error {
	return merrors.InternalServerError("user", "sick instance")
}

func (sick) List(context.Context, *userpb.ListRequest, *userpb.ListResponse) error {
	return merrors.InternalServerError("user", "sick instance")
}
