// Command scaffold adds a service to this repository or renames its module:
//
//	scaffold new orders                      (make new name=orders)
//	scaffold rename github.com/acme/shop     (make rename module=github.com/acme/shop)
//
// It works on the repository in the current directory (-root to change
// it). A bad or taken name or module path exits with status 2 and writes
// nothing; any other failure exits with status 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/example/micro-starter/internal/scaffold"
)

const usage = `usage:
  scaffold [-root dir] new <name>         add services/<name>, its compose entry and Makefile entry
  scaffold [-root dir] rename <module>    rewrite the module path everywhere and regenerate protobuf code
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "scaffold: %v\n", err)
		if errors.Is(err, scaffold.ErrUsage) || errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(_ context.Context, args []string, _ func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	root := fs.String("root", ".", "the repository's root directory")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return nil
		}
		return scaffold.UsageErrorf("%v\n%s", err, usage)
	}
	if fs.NArg() != 2 {
		return scaffold.UsageErrorf("want a command and one argument\n%s", usage)
	}
	cmd, arg := fs.Arg(0), fs.Arg(1)
	switch cmd {
	case "new":
		if err := scaffold.New(*root, arg); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added services/%s (registered as %q), its docker-compose.yml service and its Makefile SERVICES entry\n", arg, arg)
		fmt.Fprintf(stdout, "next: go test ./services/%s/... && make build\n", arg)
	case "rename":
		if err := scaffold.Rename(*root, arg); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "module renamed to %s; protobuf code regenerated\n", arg)
		fmt.Fprintf(stdout, "next: go build ./... && make test\n")
	default:
		return scaffold.UsageErrorf("unknown command %q\n%s", cmd, usage)
	}
	return nil
}
