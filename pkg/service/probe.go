package service

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/example/micro-starter/pkg/mtls"
)

// probeTimeout bounds a health probe: a container health check must answer.
const probeTimeout = 2 * time.Second

// ProbeGRPC asks the standard gRPC health check of the instance listening
// on the port of a listen address such as ":9090", on this host, and fails
// unless it answers SERVING: registered and not draining (see Health). It is
// the health check of a container image that has no shell or curl: the
// service's own binary with --health_probe.
//
// With tlsConfig it connects with it (mutual TLS); nil: plaintext.
func ProbeGRPC(listenAddress string, tlsConfig *tls.Config) error {
	addr, err := loopback(listenAddress)
	if err != nil {
		return err
	}
	creds := insecure.NewCredentials()
	if tlsConfig != nil {
		creds = credentials.NewTLS(tlsConfig)
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	conn, err := grpc.DialContext(ctx, addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return fmt.Errorf("probe %s: %w", addr, err)
	}
	defer conn.Close()
	rsp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return fmt.Errorf("probe %s: %w", addr, err)
	}
	if rsp.Status != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("probe %s: %s", addr, rsp.Status)
	}
	return nil
}

// probeInstance is the default --health_probe of cfg's instance: what
// Consul asks, GET /health on --health_address, if that has a fixed port;
// otherwise the gRPC health check on --server_address, under mutual TLS if
// cfg has a TLS identity, presenting it and expecting the service's own
// name in the server's certificate. Both answer the same state (Healthy).
func probeInstance(cfg Config) error {
	if _, port, err := net.SplitHostPort(cfg.HealthAddress); err == nil && port != "0" && port != "" {
		return ProbeHTTP(cfg.HealthAddress, "/health")
	}
	if !cfg.TLS.Enabled() {
		return ProbeGRPC(cfg.ServerAddress, nil)
	}
	id, err := mtls.Load(cfg.TLS, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	return ProbeGRPC(cfg.ServerAddress, id.ClientConfig(cfg.Name))
}

// ProbeHTTP checks that GET path on the port of listenAddress answers 200.
func ProbeHTTP(listenAddress, path string) error {
	return probeHTTP(listenAddress, path, nil)
}

// ProbeHTTPS is ProbeHTTP over HTTPS, verifying the server with tlsConfig
// (such as the server's own certificate as the only root).
func ProbeHTTPS(listenAddress, path string, tlsConfig *tls.Config) error {
	if tlsConfig == nil {
		return fmt.Errorf("probe: no TLS configuration for https")
	}
	return probeHTTP(listenAddress, path, tlsConfig)
}

func probeHTTP(listenAddress, path string, tlsConfig *tls.Config) error {
	addr, err := loopback(listenAddress)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	scheme, hc := "http://", http.DefaultClient
	if tlsConfig != nil {
		scheme, hc = "https://", &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig}}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+addr+path, nil)
	if err != nil {
		return err
	}
	rsp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("probe %s: %w", req.URL, err)
	}
	defer rsp.Body.Close()
	if rsp.StatusCode != http.StatusOK {
		return fmt.Errorf("probe %s: %s", req.URL, rsp.Status)
	}
	return nil
}

// loopback turns a listen address into one to dial on this host.
func loopback(listenAddress string) (string, error) {
	_, port, err := net.SplitHostPort(listenAddress)
	if err != nil {
		return "", fmt.Errorf("probe: listen address %q: %w", listenAddress, err)
	}
	if port == "0" || port == "" {
		return "", fmt.Errorf("probe: listen address %q has no fixed port", listenAddress)
	}
	return net.JoinHostPort("127.0.0.1", port), nil
}
