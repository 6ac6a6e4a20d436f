// Command stackinit makes and applies the registry credentials of the
// compose stack (docker-compose.yml, docs/security.md):
//
//	stackinit secrets [-dir certs] [-key-mode 0600] -services "user hello gateway"
//	stackinit init [-secrets stackinit.json] [-consul consul:8500] [-etcd etcd:2379] [-timeout 60s]
//
// secrets runs on the host (`make certs`, so `make up`): it writes, beside
// the certificates, a Consul management token and one Consul token per
// service, an etcd root password and one etcd password per service, all
// from crypto/rand, and keeps those already there. From them it derives the
// Consul agent's ACL config (consul-acl.json), the init step's input
// (stackinit.json) and each service's compose env files
// (<service>.consul.env: its token; <service>.etcd.env: its user), written
// again when they differ.
//
// init runs once per `up`, in a container of its own: it waits for Consul
// and etcd and gives each service its policy and token, role and user
// (internal/regauth), lets Consul's anonymous token read services and
// nodes, which DNS queries need, then turns etcd's authentication on. It
// is idempotent.
//
// A bad flag exits with status 2, any other failure with 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/example/micro-starter/pkg/service"
)

const usage = `usage:
  stackinit secrets [-dir certs] [-key-mode 0600] -services "user hello gateway"
  stackinit init [-secrets stackinit.json] [-consul consul:8500] [-etcd etcd:2379] [-timeout 60s]
`

func main() { service.Main("stackinit", run) }

// config is every setting of both steps, from flags.
type config struct {
	// secrets
	dir      string
	keyMode  os.FileMode
	services []string
	// init
	secrets string // the stackinit.json that secrets wrote
	consul  string // host:port of Consul's HTTP API
	etcd    []string
	timeout time.Duration // for both registries to answer and be set up
}

func run(ctx context.Context, args []string, _ func(string) string, stdout io.Writer) error {
	if len(args) < 2 {
		return &service.UsageError{Err: errors.New("want a step: secrets or init\n" + usage)}
	}
	step := args[1]
	var c config
	fs := flag.NewFlagSet(args[0]+" "+step, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var keyMode, services, etcd string
	switch step {
	case "secrets":
		fs.StringVar(&c.dir, "dir", "certs", "folder to write into (the certificates' folder)")
		fs.StringVar(&keyMode, "key-mode", "0600", "permissions of the files, in octal (0644 for containers running as another user)")
		fs.StringVar(&services, "services", "", "the services to make credentials for, separated by spaces")
	case "init":
		fs.StringVar(&c.secrets, "secrets", "stackinit.json", "the file `stackinit secrets` wrote")
		fs.StringVar(&c.consul, "consul", "consul:8500", "Consul's HTTP API, host:port")
		fs.StringVar(&etcd, "etcd", "etcd:2379", "etcd's client endpoints, separated by commas")
		fs.DurationVar(&c.timeout, "timeout", time.Minute, "how long to wait for both registries")
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		return &service.UsageError{Err: fmt.Errorf("unknown step %q\n%s", step, usage)}
	}
	if err := fs.Parse(args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil
		}
		return &service.UsageError{Err: err}
	}
	if fs.NArg() > 0 {
		return &service.UsageError{Err: fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}

	log := slog.New(slog.NewTextHandler(stdout, nil))
	switch step {
	case "secrets":
		mode, err := strconv.ParseUint(keyMode, 8, 32)
		if err != nil || mode > 0o777 || mode&0o400 == 0 {
			return &service.UsageError{Err: fmt.Errorf("-key-mode %q: want octal permissions the owner can read, such as 0600", keyMode)}
		}
		c.keyMode = os.FileMode(mode)
		c.services = strings.Fields(services)
		if len(c.services) == 0 {
			return &service.UsageError{Err: errors.New("-services: no service named")}
		}
		wrote, err := writeSecrets(c.dir, c.services, c.keyMode)
		if len(wrote) > 0 {
			fmt.Fprintf(stdout, "stackinit: wrote %s in %s\n", strings.Join(wrote, " "), c.dir)
		} else if err == nil {
			fmt.Fprintf(stdout, "stackinit: the secrets in %s are up to date\n", c.dir)
		}
		return err
	default: // init
		c.etcd = strings.Split(etcd, ",")
		return initRegistries(ctx, c, log)
	}
}
