// Command user serves the demo user directory over go-micro RPC.
package main

import (
	"bytes"
	"context"
	_ "embed"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/example/micro-starter/pkg/service"
	userpb "github.com/example/micro-starter/services/user/proto"
)

//go:embed users.json
var defaultUsers []byte

func main() { service.Main("user", run) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var usersFile string // empty: the users.json built into the binary
	cfg, log, done, err := service.Setup{
		Name: "user",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&usersFile, "users_file", "", "JSON file of users (default: the built-in demo users)")
		},
	}.Parse(args, getenv, stdout)
	if done {
		return err
	}

	dir, err := loadDirectory(usersFile)
	if err != nil {
		return err
	}
	svc, err := service.New(cfg, log)
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
