package service

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go-micro.dev/v4/registry"

	"github.com/example/micro-starter/internal/devcerts"
	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/pkg/mtls"
)

func tlsFiles(dir, name string) mtls.Files {
	return mtls.Files{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key")}
}

func TestTLSSettings(t *testing.T) {
	want := mtls.Files{CA: "ca.pem", Cert: "user.pem", Key: "user-key.pem"}
	c, err := parse([]string{"--tls_ca", "ca.pem", "--tls_cert", "user.pem", "--tls_key", "user-key.pem"}, nil)
	if err != nil || c.TLS != want {
		t.Errorf("flags: %+v, %v; want %+v", c.TLS, err, want)
	}
	c, err = parse(nil, map[string]string{"MICRO_TLS_CA": "ca.pem", "MICRO_TLS_CERT": "user.pem", "MICRO_TLS_KEY": "user-key.pem"})
	if err != nil || c.TLS != want {
		t.Errorf("environment: %+v, %v; want %+v", c.TLS, err, want)
	}
	for _, args := range [][]string{
		{"--tls_ca", "ca.pem"},
		{"--tls_cert", "user.pem", "--tls_key", "user-key.pem"},
	} {
		_, err := parse(args, nil)
		if ExitCode(err) != 2 {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}

// TestTLSFilesThatDoNotLoad: files that cannot be used stop the instance
// with one line, exit status 1, before it has started or registered.
func TestTLSFilesThatDoNotLoad(t *testing.T) {
	dir := devcerts.MustWrite(t, "user", "hello")
	for name, f := range map[string]mtls.Files{
		"missing":          {CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, "nope.crt"), Key: filepath.Join(dir, "user.key")},
		"key of another":   {CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, "user.crt"), Key: filepath.Join(dir, "hello.key")},
		"CA is not a cert": {CA: filepath.Join(dir, "ca.key"), Cert: filepath.Join(dir, "user.crt"), Key: filepath.Join(dir, "user.key")},
	} {
		t.Run(name, func(t *testing.T) {
			c := testConfig()
			c.TLS = f
			reg := registry.NewMemoryRegistry()
			_, err := newService(c, discardLogger(), reg)
			if err == nil || ExitCode(err) != 1 || strings.Contains(err.Error(), "\n") {
				t.Fatalf("newService: %v, want a one-line error, exit status 1", err)
			}
			if svcs, _ := reg.ListServices(); len(svcs) > 0 {
				t.Errorf("registered %v", svcs)
			}
		})
	}
}

func TestPlaintextWarnsOnceAtStart(t *testing.T) {
	dir := devcerts.MustWrite(t, "test")
	for _, tc := range []struct {
		name  string
		files mtls.Files
		want  int
	}{
		{"plaintext", mtls.Files{}, 1},
		{"mutual TLS", tlsFiles(dir, "test"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			c := testConfig()
			c.TLS = tc.files
			if _, err := newService(c, slog.New(slog.NewTextHandler(&out, nil)), registry.NewMemoryRegistry()); err != nil {
				t.Fatal(err)
			}
			if got := strings.Count(out.String(), "plaintext"); got != tc.want {
				t.Errorf("%d warnings of plaintext, want %d:\n%s", got, tc.want, out.String())
			}
		})
	}
}

// TestServicesCallEachOtherOverMutualTLS: two instances with certificates
// from one CA call each other; a plaintext one can neither call them nor
// be called by them; --health_probe works over mutual TLS.
func TestServicesCallEachOtherOverMutualTLS(t *testing.T) {
	dir := devcerts.MustWrite(t, "test", "caller")
	reg := registry.NewMemoryRegistry()
	c := testConfig() // registers as "test", which callEcho calls
	c.TLS = tlsFiles(dir, "test")
	c.ServerAddress = closedAddress(t) // a fixed port, for the probe
	callee := mustNewOn(t, c, reg)
	echo := &Echo{}
	mustHandle(t, callee, echo)
	start(t, callee)
	poll.Eventually(t, 5*time.Second, func() error { return registeredIn(reg, 1) })
	poll.Eventually(t, 5*time.Second, func() error { return probeInstance(c) })

	cc := testConfig()
	cc.Name, cc.TLS = "caller", tlsFiles(dir, "caller")
	if err := callEcho(mustNewOn(t, cc, reg)); err != nil {
		t.Fatalf("call with a certificate from the CA: %v", err)
	}

	pc := testConfig()
	pc.Name = "plain"
	if err := callEcho(mustNewOn(t, pc, reg)); err == nil {
		t.Error("a plaintext client called the service")
	}
	if err := ProbeGRPC(c.ServerAddress, nil); err == nil {
		t.Error("a plaintext probe passed")
	}
	// A probe that expects another name refuses the server.
	hc := c
	hc.Name, hc.TLS = "caller", tlsFiles(dir, "caller")
	if err := probeInstance(hc); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("probe expecting caller's name: %v, want a refused certificate", err)
	}
	if n := echo.started.Load(); n != 1 {
		t.Errorf("handler ran %d times, want once (the call with a certificate)", n)
	}
}
