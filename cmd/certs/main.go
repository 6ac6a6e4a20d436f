// Command certs writes a development CA and a certificate per service for
// mutual TLS between services, and one for the gateway's HTTPS on
// localhost (`make certs`):
//
//	certs [-dir certs] [-key-mode 0600] [-https gateway-https] -services "user hello gateway"
//
// It writes <dir>/ca.crt and ca.key (kept if present), <dir>/<service>.crt
// and .key for each service, with the DNS name <service>, and
// <dir>/<https>.crt and .key for localhost and 127.0.0.1. A certificate
// already there, signed by the CA and valid for 30 days more, is kept, so
// running it again adds only what is missing. Keys are written with
// -key-mode (the CA's key always 0600). A bad flag or name exits with
// status 2, any other failure with 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/example/micro-starter/internal/devcerts"
	"github.com/example/micro-starter/pkg/service"
)

func main() { service.Main("certs", run) }

func run(_ context.Context, args []string, _ func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dir := fs.String("dir", "certs", "folder to write into")
	services := fs.String("services", "", "the services to write a certificate for, separated by spaces")
	https := fs.String("https", "gateway-https", "name of the HTTPS certificate for localhost and 127.0.0.1; empty: none")
	keyMode := fs.String("key-mode", "0600", "permissions of the services' key files, in octal (0644 for containers running as another user)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil
		}
		return &service.UsageError{Err: err}
	}
	if fs.NArg() > 0 {
		return &service.UsageError{Err: fmt.Errorf("unexpected argument %q (services go in -services)", fs.Arg(0))}
	}
	mode, err := strconv.ParseUint(*keyMode, 8, 32)
	if err != nil || mode > 0o777 || mode&0o400 == 0 {
		return &service.UsageError{Err: fmt.Errorf("-key-mode %q: want octal permissions the owner can read, such as 0600", *keyMode)}
	}
	names := strings.Fields(*services)
	if len(names) == 0 {
		return &service.UsageError{Err: errors.New("-services: no service named")}
	}
	for _, n := range append(names[:len(names):len(names)], *https) {
		if n == "" {
			continue
		}
		if err := devcerts.CheckName(n); err != nil {
			return &service.UsageError{Err: err}
		}
	}
	wrote, err := devcerts.Write(*dir, names, *https, os.FileMode(mode))
	if len(wrote) > 0 {
		fmt.Fprintf(stdout, "certs: wrote %s in %s\n", strings.Join(wrote, " "), *dir)
	} else if err == nil {
		fmt.Fprintf(stdout, "certs: %s is up to date\n", *dir)
	}
	return err
}
