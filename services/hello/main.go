// Command hello greets users of the user service over go-micro RPC.
package main

import (
	"context"
	"fmt"
	"io"

	"github.com/example/micro-starter/pkg/service"
	hellopb "github.com/example/micro-starter/services/hello/proto"
)

func main() { service.Main("hello", run) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, log, done, err := service.Setup{Name: "hello"}.Parse(args, getenv, stdout)
	if done {
		return err
	}

	svc, err := service.New(cfg, log)
	if err != nil {
		return err
	}
	if err := hellopb.RegisterHelloServiceHandler(svc.Server(), newHandler(svc.Client(), svc.Instance(), log)); err != nil {
		return fmt.Errorf("register handler: %w", err)
	}
	return svc.Run(ctx)
}
