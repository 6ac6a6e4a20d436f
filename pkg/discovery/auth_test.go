package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go-micro.dev/v4/registry"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

func TestValidateCredentials(t *testing.T) {
	for _, tc := range []struct {
		name    string
		c       Config
		wantErr string // "" means valid
	}{
		{"consul with a token", Config{Name: "consul", Token: "t"}, ""},
		{"etcd with user and password", Config{Name: "etcd", Username: "u", Password: "p"}, ""},
		{"TLS with a CA only", Config{Name: "etcd", TLS: TLSFiles{CA: "ca.crt"}}, ""},
		{"certificate without key", Config{Name: "consul", TLS: TLSFiles{Cert: "c.crt"}}, "set both or neither"},
		{"key without certificate", Config{Name: "consul", TLS: TLSFiles{Key: "c.key"}}, "set both or neither"},
		{"TLS with mdns", Config{Name: "mdns", TLS: TLSFiles{CA: "ca.crt"}}, "no server"},
		{"token with etcd", Config{Name: "etcd", Token: "t"}, "for consul"},
		{"username with consul", Config{Name: "consul", Username: "u", Password: "p"}, "for etcd"},
		{"username without password", Config{Name: "etcd", Username: "u"}, "MICRO_REGISTRY_PASSWORD"},
		{"password without username", Config{Name: "etcd", Password: "p"}, "set both or neither"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.Timeout = time.Second
			err := tc.c.Validate()
			if tc.wantErr == "" && err != nil {
				t.Fatalf("Validate: %v, want nil", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Validate: %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
}

// TestSecretNeverPrinted: a Config printed or logged in any of the usual
// ways does not show the password or the token.
func TestSecretNeverPrinted(t *testing.T) {
	c := Config{Name: "etcd", Username: "u", Password: "hunter2", Token: "tok-secret"}
	js, _ := json.Marshal(c)
	var text, jsonLog strings.Builder
	slog.New(slog.NewTextHandler(&text, nil)).Info("x", "cfg", c)
	slog.New(slog.NewJSONHandler(&jsonLog, nil)).Info("x", "cfg", c)
	for _, out := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), string(js), text.String(), jsonLog.String()} {
		if strings.Contains(out, "hunter2") || strings.Contains(out, "tok-secret") {
			t.Errorf("printed a secret: %s", out)
		}
		if !strings.Contains(out, "u") {
			t.Errorf("printed nothing useful: %s", out)
		}
	}
}

func TestIsDenied(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{rpctypes.ErrPermissionDenied, true},
		{fmt.Errorf("register: %w", rpctypes.ErrAuthFailed), true},
		{errors.New("etcdserver: user name is empty"), true}, // as the plugin passes it on, unwrapped
		{errors.New("Unexpected response code: 403 (ACL not found)"), true},
		{errors.New("Unexpected response code: 500 (rpc error)"), false},
		{errors.New("context deadline exceeded"), false},
		{nil, false},
	} {
		if got := IsDenied(tc.err); got != tc.want {
			t.Errorf("IsDenied(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// refusing is a registry whose every lookup is refused.
type refusing struct {
	registry.Registry
	calls int
}

func (r *refusing) ListServices(...registry.ListOption) ([]*registry.Service, error) {
	r.calls++
	return nil, errors.New("Unexpected response code: 403 (ACL not found)")
}

// TestPingDoesNotRetryRefusal: a registry that refuses the credentials
// answers the same on every try; Ping reports it at once, with its answer.
func TestPingDoesNotRetryRefusal(t *testing.T) {
	r := &refusing{Registry: registry.NewMemoryRegistry()}
	c := Config{Name: "consul", Addresses: []string{"127.0.0.1:1"}, Timeout: time.Second}
	err := Ping(context.Background(), c, r, 5, time.Millisecond, t.Logf)
	if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "ACL not found") {
		t.Errorf("Ping: %v, want ErrDenied with the registry's answer", err)
	}
	if r.calls != 1 {
		t.Errorf("Ping asked %d times, want 1", r.calls)
	}
}

// TestConsulIgnoresEnvironment: the token, address and scheme of every
// request are ours, whatever CONSUL_* variables the process inherited.
func TestConsulIgnoresEnvironment(t *testing.T) {
	var mu sync.Mutex
	var tokens []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		tokens = append(tokens, r.Header.Get("X-Consul-Token")+"|"+r.URL.Query().Get("token"))
		mu.Unlock()
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("request to CONSUL_HTTP_ADDR: %s", r.URL)
	}))
	defer elsewhere.Close()
	t.Setenv("CONSUL_HTTP_TOKEN", "from-env")
	t.Setenv("CONSUL_HTTP_ADDR", strings.TrimPrefix(elsewhere.URL, "http://"))
	t.Setenv("CONSUL_HTTP_SSL", "true")

	for _, token := range []Secret{"", "ours"} {
		mu.Lock()
		tokens = nil
		mu.Unlock()
		c := Config{Name: "consul", Addresses: []string{strings.TrimPrefix(srv.URL, "http://")}, Timeout: time.Second, Token: token}
		r, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.ListServices(); err != nil {
			t.Fatalf("ListServices: %v", err)
		}
		mu.Lock()
		want := string(token) + "|" // in the header, never in the query
		if len(tokens) == 0 {
			t.Errorf("no request reached the address given")
		}
		for _, got := range tokens {
			if got != want {
				t.Errorf("token %q: a request carried %q, want %q", string(token), got, want)
			}
		}
		mu.Unlock()
	}
}
