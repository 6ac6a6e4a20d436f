package discovery

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/hashicorp/consul/api"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Secret is a credential: it prints as "[redacted]", so that a Config in a
// log line, an error or -h never shows it.
type Secret string

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString covers %#v, and MarshalText JSON and slog's JSON handler.
func (s Secret) GoString() string             { return s.String() }
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Set makes a Secret a flag.Value.
func (s *Secret) Set(v string) error { *s = Secret(v); return nil }

// TLSFiles are the PEM files a service reaches the registry with. Any of
// them set means TLS; with none, plain HTTP (Consul) or gRPC (etcd).
type TLSFiles struct {
	CA   string // verifies the registry's certificate; empty: the system's roots
	Cert string // client certificate, for a registry that asks for one
	Key  string // its private key
}

func (f TLSFiles) set() bool { return f.CA != "" || f.Cert != "" || f.Key != "" }

// config loads the files into a client TLS configuration; nil if none is set.
func (f TLSFiles) config() (*tls.Config, error) {
	if !f.set() {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("registry TLS CA: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("registry TLS CA %s: no PEM certificate in it", f.CA)
		}
	}
	if f.Cert != "" {
		cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("registry TLS certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// validateCredentials reports credentials that the chosen registry would
// ignore: a service would then run without the access its operator meant
// to give it, so each is an error rather than a warning.
func (c Config) validateCredentials() error {
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		return errors.New("registry TLS: a client certificate and its key go together: set both or neither")
	}
	if c.TLS.set() && !c.HasServer() {
		return fmt.Errorf("registry TLS: %s has no server to reach", c.Name)
	}
	if c.Token != "" && c.Name != "consul" {
		return fmt.Errorf("registry token: an ACL token is for consul, not %s (etcd takes a username and password)", c.Name)
	}
	if (c.Username != "" || c.Password != "") && c.Name != "etcd" {
		return fmt.Errorf("registry username and password: for etcd, not %s (consul takes a token)", c.Name)
	}
	if (c.Username == "") != (c.Password == "") {
		return errors.New("registry username and password: set both or neither (the password comes from MICRO_REGISTRY_PASSWORD or --registry_password_file)")
	}
	return nil
}

// ErrDenied is returned by Ping when the registry answered and refused the
// service's credentials: trying again would not help.
var ErrDenied = errors.New("registry refused access")

// IsDenied reports whether err is a registry's refusal of the credentials
// or of the operation (Consul's 403, etcd's authentication and permission
// errors), as opposed to a registry that is down or slow.
func IsDenied(err error) bool {
	if err == nil {
		return false
	}
	for _, e := range []error{rpctypes.ErrPermissionDenied, rpctypes.ErrAuthFailed, rpctypes.ErrUserEmpty,
		rpctypes.ErrUserNotFound, rpctypes.ErrRoleNotFound} {
		if errors.Is(err, e) || strings.Contains(err.Error(), e.Error()) {
			return true
		}
	}
	// consul/api returns "Unexpected response code: 403 (ACL not found)"
	// and the like, as a plain string.
	return strings.Contains(err.Error(), "response code: 403")
}

// consulConfig is the whole configuration of the Consul client, so that
// nothing in it comes from CONSUL_* variables, which consul/api reads
// otherwise (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, CONSUL_CACERT, ...): the
// flags say what the service uses.
func consulConfig(c Config) (*api.Config, error) {
	tlsConf, err := c.TLS.config()
	if err != nil {
		return nil, err
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	scheme := "http"
	if tlsConf != nil {
		scheme, t.TLSClientConfig = "https", tlsConf
	}
	addr := "127.0.0.1:8500"
	if len(c.Addresses) > 0 {
		addr = c.Addresses[0]
	}
	return &api.Config{Address: addr, Scheme: scheme, Token: string(c.Token),
		HttpClient: &http.Client{Transport: &consulToken{token: string(c.Token), next: newConsulFailover(c.Addresses, t)}}}, nil
}

// consulToken sets the token of every request to ours, or to none: consul/api
// fills an empty token from CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE.
type consulToken struct {
	token string
	next  http.RoundTripper
}

func (t *consulToken) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("X-Consul-Token") != t.token {
		req = req.Clone(req.Context())
		req.Header.Del("X-Consul-Token")
		if t.token != "" {
			req.Header.Set("X-Consul-Token", t.token)
		}
	}
	return t.next.RoundTrip(req)
}
