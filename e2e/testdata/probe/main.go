// Command probe makes one call, user's Get("ada"), straight to one address
// on the compose network, as an outsider would: in plaintext, over TLS
// with no client certificate, or with the certificate given. It prints the
// answer and exits 0, or prints the error and exits 1. The e2e test runs
// it in a throwaway container attached to the stack's network.
//
//	probe -addr 172.18.0.5:9090 [-plaintext] [-ca ca.crt [-cert c.crt -key c.key]]
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	userpb "github.com/example/micro-starter/services/user/proto"
)

func main() {
	if err := run(os.Args, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "probe: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	addr := fs.String("addr", "", "host:port of a user instance")
	plaintext := fs.Bool("plaintext", false, "no TLS at all")
	ca := fs.String("ca", "", "CA (PEM) that the callee's certificate must chain to")
	cert := fs.String("cert", "", "client certificate (PEM); none if empty")
	key := fs.String("key", "", "its private key (PEM)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *addr == "" {
		return errors.New("-addr is required")
	}
	creds := insecure.NewCredentials()
	if !*plaintext {
		pem, err := os.ReadFile(*ca)
		if err != nil {
			return err
		}
		// Checks the callee as the services do: its certificate names user.
		// NextProtos h2, as a gRPC client sends it: grpc-go servers since
		// v1.67 close a TLS connection that negotiated no ALPN.
		conf := &tls.Config{RootCAs: x509.NewCertPool(), ServerName: "user", MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"}}
		if !conf.RootCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s: no certificate", *ca)
		}
		if *cert != "" {
			c, err := tls.LoadX509KeyPair(*cert, *key)
			if err != nil {
				return err
			}
			conf.Certificates = []tls.Certificate{c}
		}
		// The handshake alone, to report the server's refusal as it is
		// (gRPC reports only the broken connection): with TLS 1.3 a
		// server that wants a client certificate says so after the
		// client has finished, so read: its alert, or its first frame.
		if err := handshake(*addr, conf); err != nil {
			return err
		}
		creds = credentials.NewTLS(conf)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(ctx, *addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	// The path go-micro's gRPC client uses for user's UserService.Get.
	var rsp userpb.GetResponse
	if err := conn.Invoke(ctx, "/user.UserService/Get", &userpb.GetRequest{Id: "ada"}, &rsp); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "answered by %s: %s\n", rsp.Instance, rsp.GetUser().GetName())
	return nil
}

// handshake connects to addr with conf and fails if the server refuses
// the handshake.
func handshake(addr string, conf *tls.Config) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, conf)
	if err != nil {
		return fmt.Errorf("tls handshake with %s: %w", addr, err)
	}
	defer conn.Close()
	if err := conn.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	// Accepted: a gRPC server sends its first frame at once, or waits.
	_, err = conn.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); err == nil || ok && ne.Timeout() {
		return nil
	}
	return fmt.Errorf("tls handshake with %s: %w", addr, err)
}
