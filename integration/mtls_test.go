package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	grpcclient "github.com/go-micro/plugins/v4/client/grpc"
	"go-micro.dev/v4/client"

	"github.com/example/micro-starter/internal/devcerts"
	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/internal/stack"
	"github.com/example/micro-starter/pkg/mtls"
	userpb "github.com/example/micro-starter/services/user/proto"
)

// tlsArgs are the flags that give a service the identity name from dir.
func tlsArgs(dir, name string) []string {
	return []string{
		"--tls_ca", filepath.Join(dir, "ca.crt"),
		"--tls_cert", filepath.Join(dir, name+".crt"),
		"--tls_key", filepath.Join(dir, name+".key"),
	}
}

func mustIdentity(tb testing.TB, dir, name string) *mtls.Identity {
	tb.Helper()
	id, err := mtls.Load(mtls.Files{
		CA:   filepath.Join(dir, "ca.crt"),
		Cert: filepath.Join(dir, name+".crt"),
		Key:  filepath.Join(dir, name+".key"),
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// TestMutualTLS runs the system with certificates from one CA, plus an
// impostor: a user binary, registered as user, with hello's certificate
// (valid, from the same CA, but not naming user). Under load through the
// gateway no request fails and every answer comes from the real user; and
// nobody without a certificate from the CA can call user directly.
func TestMutualTLS(t *testing.T) {
	forEachRegistry(t, func(t *testing.T, reg *stack.Registry) {
		certs := devcerts.MustWrite(t, "user", "hello", "gateway")
		other := devcerts.MustWrite(t, "user", "hello", "gateway") // another CA

		real := mustStartService(t, reg, "user", "user", tlsArgs(certs, "user")...)
		impostor := mustStartService(t, reg, "user", "impostor", tlsArgs(certs, "hello")...)
		mustStartService(t, reg, "hello", "hello", tlsArgs(certs, "hello")...)
		url := gatewayURL(t, mustStartService(t, reg, "gateway", "gateway", append(tlsArgs(certs, "gateway"), "--http_address", "127.0.0.1:0")...))
		poll.Eventually(t, 20*time.Second, func() error {
			if code := get(t, url+"/readyz", nil); code != http.StatusOK {
				return fmt.Errorf("GET /readyz: %d", code)
			}
			return nil
		})

		t.Run("the impostor never answers", func(t *testing.T) {
			// Both paths to user: the gateway's own call, and hello's.
			answers := loadAnswers(t, 3, 60, func() (string, error) {
				var rsp struct{ Instance string }
				err := stack.GetJSON(httpClient, url+"/users/ada", &rsp)
				return rsp.Instance, err
			}, func() (string, error) {
				var rsp struct{ Instances map[string]string }
				err := stack.GetJSON(httpClient, url+"/hello?user_id=ada", &rsp)
				return rsp.Instances["user"], err
			})
			for who, n := range answers {
				if who != real.ID {
					t.Errorf("%d answers from %q, want every one from the real user %s (impostor: %s)", n, who, real.ID, impostor.ID)
				}
			}
		})

		t.Run("only a client with a certificate from the CA can call user", func(t *testing.T) {
			addr := instanceAddress(t, reg, real.ID)
			for _, tc := range []struct {
				name string
				tls  *tls.Config
				ok   bool
			}{
				{"a certificate from the CA", mustIdentity(t, certs, "gateway").ClientConfig("user"), true},
				{"plaintext", nil, false},
				{"a certificate from another CA", func() *tls.Config {
					c := mustIdentity(t, other, "gateway").ClientConfig("user")
					c.RootCAs = nil
					c.InsecureSkipVerify = true // the client trusts user: only user's check is tested
					return c
				}(), false},
			} {
				var opts []client.Option
				if tc.tls != nil {
					opts = append(opts, grpcclient.AuthTLS(tc.tls))
				}
				c := grpcclient.NewClient(opts...)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				rsp, err := userpb.NewUserService("user", c).Get(ctx, &userpb.GetRequest{Id: "ada"}, client.WithAddress(addr), client.WithRetries(0))
				cancel()
				if tc.ok && (err != nil || rsp.User.GetId() != "ada") {
					t.Errorf("%s: %v, want ada", tc.name, err)
				}
				if !tc.ok && err == nil {
					t.Errorf("%s: called user, want refused", tc.name)
				}
			}
		})

		t.Run("--health_probe over mutual TLS", func(t *testing.T) {
			addr := instanceAddress(t, reg, real.ID)
			probe := func(args ...string) error {
				cmd := exec.Command(filepath.Join(binDir, "user"), append([]string{"--health_probe", "--server_address", addr}, args...)...)
				cmd.Env = stack.HermeticEnv()
				out, err := cmd.CombinedOutput()
				if err != nil {
					return fmt.Errorf("%v: %s", err, out)
				}
				return nil
			}
			if err := probe(tlsArgs(certs, "user")...); err != nil {
				t.Errorf("probe with user's certificate: %v", err)
			}
			if err := probe(); err == nil {
				t.Error("a plaintext probe passed")
			}
		})
	})
}

// loadAnswers sends each request from workers goroutines, n times each,
// paced under the gateway's rate limit, fails the test for every failed
// one, and counts the answers by who answered.
func loadAnswers(t *testing.T, workers, n int, requests ...func() (string, error)) map[string]int {
	t.Helper()
	var (
		mu      sync.Mutex
		answers = map[string]int{}
		failed  []string
		wg      sync.WaitGroup
	)
	for _, req := range requests {
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for range n {
					<-tick.C
					who, err := req()
					mu.Lock()
					if err != nil {
						failed = append(failed, err.Error())
					} else {
						answers[who]++
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	total := workers * n * len(requests)
	if len(failed) > 0 {
		t.Errorf("%d of %d requests failed; the first: %s", len(failed), total, strings.Join(failed[:min(len(failed), 5)], "\n"))
	}
	return answers
}

// instanceAddress is the RPC address the registry lists for instance id.
func instanceAddress(tb testing.TB, reg *stack.Registry, id string) string {
	tb.Helper()
	for _, i := range reg.MustInstances(tb, "user") {
		if i.ID == id {
			return i.Address
		}
	}
	tb.Fatalf("%s is not registered", id)
	return ""
}
