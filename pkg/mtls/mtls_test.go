package mtls

import (
	"crypto/tls"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/example/micro-starter/internal/devcerts"
)

func files(dir, name string) Files {
	return Files{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key")}
}

func mustLoad(t *testing.T, f Files) *Identity {
	t.Helper()
	id, err := Load(f, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// serve accepts one connection with cfg, writes "ok" and returns what the
// server saw of the handshake.
func serve(t *testing.T, cfg *tls.Config) (addr string, done <-chan error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- err
			return
		}
		defer c.Close()
		if err := c.(*tls.Conn).Handshake(); err != nil {
			ch <- err
			return
		}
		_, err = c.Write([]byte("ok"))
		ch <- err
	}()
	return ln.Addr().String(), ch
}

// exchange connects with cfg and reads the server's "ok": with TLS 1.3 a
// refused client certificate shows only at the first read.
func exchange(addr string, cfg *tls.Config) (*tls.ConnectionState, error) {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, err
	}
	st := c.ConnectionState()
	return &st, nil
}

func TestHandshakes(t *testing.T) {
	dir := devcerts.MustWrite(t, "user", "hello")
	other := devcerts.MustWrite(t, "user", "hello") // another CA, same names
	user := mustLoad(t, files(dir, "user"))
	hello := mustLoad(t, files(dir, "hello"))
	outsider := mustLoad(t, files(other, "hello"))

	// Another CA's certificate, from a client that trusts the right CA.
	forged := outsider.ClientConfig("user")
	forged.RootCAs = user.roots
	plain := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13} // no certificate, trusts anything

	for _, tc := range []struct {
		name   string
		server *Identity
		client *tls.Config
		// clientErr is in the caller's error, serverErr in the server's; "" for none.
		clientErr, serverErr string
	}{
		{"the callee named as called", user, hello.ClientConfig("user"), "", ""},
		{"a callee with another service's certificate", hello, user.ClientConfig("user"), "not user", "bad certificate"},
		{"a callee with the right name from another CA", mustLoad(t, files(other, "user")), hello.ClientConfig("user"), "unknown authority", "bad certificate"},
		{"a client without a certificate", user, plain, "certificate required", "didn't provide a certificate"},
		{"a client with a certificate of another CA", user, forged, "unknown certificate authority", "unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, served := serve(t, tc.server.ServerConfig())
			st, err := exchange(addr, tc.client)
			serr := <-served
			if tc.clientErr == "" {
				if err != nil || serr != nil {
					t.Fatalf("client: %v, server: %v; want a connection", err, serr)
				}
				if st.Version != tls.VersionTLS13 || st.PeerCertificates[0].DNSNames[0] != "user" {
					t.Errorf("version %x, peer %v; want TLS 1.3 with user", st.Version, st.PeerCertificates[0].DNSNames)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.clientErr) {
				t.Errorf("client: %v, want an error with %q", err, tc.clientErr)
			}
			if serr == nil || !strings.Contains(serr.Error(), tc.serverErr) {
				t.Errorf("server: %v, want an error with %q", serr, tc.serverErr)
			}
		})
	}
}

func TestCertificateReloadsWhenItsFilesChange(t *testing.T) {
	dir := devcerts.MustWrite(t, "user", "hello")
	user := mustLoad(t, files(dir, "user"))
	user.every = 0 // look at every handshake
	hello := mustLoad(t, files(dir, "hello"))

	serial := func() string {
		t.Helper()
		addr, served := serve(t, user.ServerConfig())
		st, err := exchange(addr, hello.ClientConfig("user"))
		if err != nil {
			t.Fatal(err)
		}
		if err := <-served; err != nil {
			t.Fatal(err)
		}
		return st.PeerCertificates[0].SerialNumber.String()
	}
	first := serial()

	// A renewed certificate from the same CA, written in place.
	for _, f := range []string{"user.crt", "user.key"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := devcerts.Write(dir, []string{"user"}, "", 0o600); err != nil {
		t.Fatal(err)
	}
	if got := serial(); got == first {
		t.Fatalf("still serving certificate %s after it was replaced", got)
	}

	// A broken file keeps the last good certificate in use.
	second := serial()
	if err := os.WriteFile(filepath.Join(dir, "user.key"), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := serial(); got != second {
		t.Fatalf("serving %s after a broken key, want the previous %s", got, second)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := devcerts.MustWrite(t, "user", "hello")
	other := devcerts.MustWrite(t, "user")
	notPEM := filepath.Join(t.TempDir(), "x.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		f    Files
		want string
	}{
		{"only some files", Files{CA: filepath.Join(dir, "ca.crt")}, "together"},
		{"a missing CA", Files{CA: filepath.Join(dir, "nope.crt"), Cert: filepath.Join(dir, "user.crt"), Key: filepath.Join(dir, "user.key")}, "no such file"},
		{"a CA that is not PEM", Files{CA: notPEM, Cert: filepath.Join(dir, "user.crt"), Key: filepath.Join(dir, "user.key")}, "no PEM certificate"},
		{"a key of another certificate", Files{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, "user.crt"), Key: filepath.Join(dir, "hello.key")}, "does not match"},
		{"a certificate of another CA", Files{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(other, "user.crt"), Key: filepath.Join(other, "user.key")}, "unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.f, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("Load: %v, want one line with %q", err, tc.want)
			}
		})
	}
}
