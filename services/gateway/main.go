// Command gateway serves an HTTP/JSON API for people and curl, and calls the
// user and hello services by name through the registry.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"go-micro.dev/v4/server"

	"github.com/example/micro-starter/pkg/service"
	hellopb "github.com/example/micro-starter/services/hello/proto"
	userpb "github.com/example/micro-starter/services/user/proto"
)

func main() { service.Main("gateway", run) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	httpCfg := defaultHTTPConfig()
	cfg, log, done, err := service.Setup{
		Name:  "gateway",
		Flags: httpCfg.flags,
		Env:   httpEnv(),
		Check: func(c service.Config) error { return httpCfg.validate(c.Client.RequestTimeout) },
		Probe: func(service.Config) error { return httpCfg.probe() },
	}.Parse(args, getenv, stdout)
	if done {
		return err
	}

	// Read the certificate before anything registers: a missing or wrong
	// file is an error at once, not a failed handshake for every client.
	var certs *certFiles
	if httpCfg.TLSCert != "" {
		if certs, err = loadCertFiles(httpCfg.TLSCert, httpCfg.TLSKey, log); err != nil {
			return err
		}
	}
	// Bind before anything registers, so a taken port is an error first.
	ln, err := net.Listen("tcp", httpCfg.Address)
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	defer ln.Close()

	// The HTTP address is published in the registry beside the RPC one, so
	// tools reading the registry can find the API.
	svc, err := service.New(cfg, log, server.Metadata(map[string]string{"http_address": ln.Addr().String()}))
	if err != nil {
		return err
	}
	// The status page (status.go), on the metrics port: it names instances.
	st := newStatus(svc.Registry(), cfg.Registry.Timeout, svc.Outliers().EjectedNow, svc.Metrics().Registry, "user", "hello")
	st.register(svc.HandleMetrics)
	calls := st.Count(svc.Client())
	api := &API{
		users: userpb.NewUserService("user", calls),
		hello: hellopb.NewHelloService("hello", calls),
		ready: readiness(svc.Registry(), cfg.Registry.Timeout, svc.Draining, "user", "hello"),
		limit: newRateLimiter(httpCfg.RateLimit, httpCfg.RateBurst, maxClients, time.Now, log),
		log:   log,
	}
	if cfg.MetricsAddress != service.MetricsOff {
		api.metrics = svc.Metrics() // counted into the instance's registry, served on its /metrics
	}
	// Prometheus's discovery of every instance (sd.go), beside /metrics.
	svc.HandleMetrics("GET /sd/targets", sdTargets(svc.Registry(), cfg.Registry.Timeout))
	srv := newHTTPServer(httpCfg, traced(svc.Tracing(), api.Handler()))
	scheme := "http"
	if certs != nil {
		srv.TLSConfig, scheme = certs.serverTLS(), "https"
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	serveErr := make(chan error, 1)
	go func() {
		err := serve(srv, ln)
		if !errors.Is(err, http.ErrServerClosed) {
			cancel() // stop the service too: a gateway without HTTP is useless
		}
		serveErr <- err
	}()
	log.Info("http listening", "address", ln.Addr().String(), "scheme", scheme)

	// Run returns after deregistering and draining; HTTP keeps serving until then.
	runErr := svc.Run(ctx)
	shutdownCtx, cancelShutdown := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancelShutdown()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Error("http shutdown", "err", err)
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return errors.Join(runErr, fmt.Errorf("http serve: %w", err))
	}
	return runErr
}
