package wrappers

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	grpcserver "github.com/go-micro/plugins/v4/server/grpc"
	"go-micro.dev/v4/registry"

	"github.com/example/micro-starter/internal/devcerts"
	"github.com/example/micro-starter/pkg/mtls"
)

// tlsNames gives each test run services of its own (hystrix keeps circuits
// per process), as DNS names a certificate can carry.
func tlsNames() (user, hello string) {
	n := time.Now().UnixNano()
	return fmt.Sprintf("user%d", n), fmt.Sprintf("hello%d", n)
}

func mustIdentity(tb testing.TB, dir, name string) *mtls.Identity {
	tb.Helper()
	id, err := mtls.Load(mtls.Files{
		CA:   filepath.Join(dir, "ca.crt"),
		Cert: filepath.Join(dir, name+".crt"),
		Key:  filepath.Join(dir, name+".key"),
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func tlsClient(tb testing.TB, id *mtls.Identity) Config {
	tb.Helper()
	c := DefaultConfig()
	c.TLS = id
	return c
}

func TestMutualTLS(t *testing.T) {
	user, hello := tlsNames()
	dir := devcerts.MustWrite(t, user, hello)
	other := devcerts.MustWrite(t, user, hello) // another CA
	reg := registry.NewMemoryRegistry()
	server := mustServe(t, reg, user, "real", grpcserver.AuthTLS(mustIdentity(t, dir, user).ServerConfig()))

	for _, tc := range []struct {
		name string
		tls  *mtls.Identity
		ok   bool
	}{
		{"a client with a certificate from the CA", mustIdentity(t, dir, hello), true},
		{"a plaintext client", nil, false},
		{"a client with a certificate from another CA", mustIdentity(t, other, hello), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.TLS = tc.tls
			before := server.calls.Load()
			rsp, err := call(context.Background(), mustClient(t, reg, cfg), user)
			if tc.ok {
				if err != nil || rsp.Instance != "real" {
					t.Fatalf("call: %v, answered by %q; want an answer from real", err, rsp.Instance)
				}
				return
			}
			if err == nil {
				t.Fatal("call succeeded, want it refused")
			}
			if n := server.calls.Load() - before; n != 0 {
				t.Errorf("the handler ran %d times for a refused client", n)
			}
		})
	}
}

// TestImpostorNeverAnswers: an instance registered as user that serves
// with hello's certificate (valid, from the same CA) is refused at every
// call, which fails over to the real instance: no call fails, none reaches
// the impostor.
func TestImpostorNeverAnswers(t *testing.T) {
	user, hello := tlsNames()
	dir := devcerts.MustWrite(t, user, hello)
	reg := registry.NewMemoryRegistry()
	real := mustServe(t, reg, user, "real", grpcserver.AuthTLS(mustIdentity(t, dir, user).ServerConfig()))
	impostor := mustServe(t, reg, user, "impostor", grpcserver.AuthTLS(mustIdentity(t, dir, hello).ServerConfig()))
	c := mustClient(t, reg, tlsClient(t, mustIdentity(t, dir, hello)))

	const callers, calls = 4, 50
	var wg sync.WaitGroup
	errs := make(chan error, callers*calls)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range calls {
				rsp, err := call(context.Background(), c, user)
				if err == nil && rsp.Instance != "real" {
					err = fmt.Errorf("answered by %q", rsp.Instance)
				}
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := impostor.calls.Load(); n != 0 {
		t.Errorf("the impostor's handler ran %d times", n)
	}
	if n := real.calls.Load(); n != callers*calls {
		t.Errorf("the real instance answered %d calls, want %d", n, callers*calls)
	}
}

// TestRefusedHandshakeIsANetworkFault: a callee whose certificate does not
// name the service is treated like one that cannot be reached: retried on
// the next instance and counted against it, never against the caller.
func TestRefusedHandshakeIsANetworkFault(t *testing.T) {
	user, hello := tlsNames()
	dir := devcerts.MustWrite(t, user, hello)
	reg := registry.NewMemoryRegistry()
	mustServe(t, reg, user, "impostor", grpcserver.AuthTLS(mustIdentity(t, dir, hello).ServerConfig()))
	cfg := tlsClient(t, mustIdentity(t, dir, hello))
	cfg.Retries = 0
	ctx := context.Background()
	_, err := call(ctx, mustClient(t, reg, cfg), user)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("call: %v, want a refused certificate", err)
	}
	if f := Classify(ctx, err); f != NetworkFault {
		t.Errorf("Classify(%v) = %v, want %v", err, f, NetworkFault)
	}
}

// TestConnectionsAreNotSharedAcrossNames: a connection checked for one
// service does not carry a call to another service registered at the same
// address (go-micro's client pools connections by address alone).
func TestConnectionsAreNotSharedAcrossNames(t *testing.T) {
	user, hello := tlsNames()
	dir := devcerts.MustWrite(t, user, hello)
	reg := registry.NewMemoryRegistry()
	real := mustServe(t, reg, user, "real", grpcserver.AuthTLS(mustIdentity(t, dir, user).ServerConfig()))
	c := mustClient(t, reg, tlsClient(t, mustIdentity(t, dir, hello)))
	if _, err := call(context.Background(), c, user); err != nil {
		t.Fatal(err)
	}
	svcs, err := reg.GetService(user)
	if err != nil || len(svcs) != 1 || len(svcs[0].Nodes) != 1 {
		t.Fatalf("registry: %v, %v", svcs, err)
	}
	// A forged entry: hello at user's address.
	if err := reg.Register(&registry.Service{Name: hello, Nodes: []*registry.Node{{Id: "forged", Address: svcs[0].Nodes[0].Address}}}); err != nil {
		t.Fatal(err)
	}
	before := real.calls.Load()
	if _, err := call(context.Background(), c, hello); err == nil {
		t.Fatal("a call to hello was answered by user's instance")
	}
	if n := real.calls.Load() - before; n != 0 {
		t.Errorf("user's handler ran %d times for calls to hello", n)
	}
}
