package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/example/micro-starter/pkg/service"
	"github.com/example/micro-starter/pkg/service/servicetest"
)

// testCert is a self-signed certificate for localhost and 127.0.0.1, as
// `make certs` writes for the gateway, and its files.
type testCert struct {
	certFile, keyFile string
	leaf              *x509.Certificate
}

// newTestCert writes a new certificate and key to dir as name.crt and
// name.key, valid from now for an hour.
func newTestCert(tb testing.TB, dir, name string) testCert {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	c := testCert{certFile: filepath.Join(dir, name+".crt"), keyFile: filepath.Join(dir, name+".key"), leaf: leaf}
	writePEM(tb, c.certFile, "CERTIFICATE", der)
	writePEM(tb, c.keyFile, "PRIVATE KEY", keyDER)
	return c
}

func writePEM(tb testing.TB, file, kind string, der []byte) {
	tb.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// client trusts only c.
func (c testCert) client() *http.Client {
	roots := x509.NewCertPool()
	roots.AddCert(c.leaf)
	return &http.Client{Timeout: hangGuard, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots}, DisableKeepAlives: true}}
}

// startHTTPSServer is startHTTPServer over HTTPS with c, as main serves it.
func startHTTPSServer(tb testing.TB, c testCert, f *apiFixture) string {
	tb.Helper()
	certs, err := loadCertFiles(c.certFile, c.keyFile, f.api.log)
	if err != nil {
		tb.Fatal(err)
	}
	return startServer(tb, lenient(), f, certs.serverTLS())
}

// TestRunServesHTTPS: with a certificate and key, the gateway answers HTTPS
// with that certificate, and refuses plain HTTP on the same port.
func TestRunServesHTTPS(t *testing.T) {
	cert := newTestCert(t, t.TempDir(), "gateway-https")
	r := servicetest.Start(t, run, []string{"gateway", "--registry", "memory", "--server_address", "127.0.0.1:0",
		"--http_address", "127.0.0.1:0", "--shutdown_drain", "0s", "--http_tls_cert", cert.certFile},
		map[string]string{"HTTP_TLS_KEY": cert.keyFile})
	r.MustServe(t)
	m := regexp.MustCompile(`msg="http listening" address=(\S+) scheme=https`).FindStringSubmatch(r.Out.String())
	if m == nil {
		t.Fatalf("no HTTPS address logged:\n%s", r.Out)
	}

	wantGet(t, cert.client(), "https://"+m[1]+"/healthz", http.StatusOK, `"status":"ok"`)

	rsp, err := (&http.Client{Timeout: hangGuard}).Get("http://" + m[1] + "/healthz")
	if err == nil {
		body, _ := io.ReadAll(rsp.Body)
		rsp.Body.Close()
		if rsp.StatusCode == http.StatusOK || strings.Contains(string(body), `"status"`) {
			t.Errorf("plain HTTP answered by the API: %d %s", rsp.StatusCode, body)
		}
	}
	r.MustStop(t)
}

// TestRunRejectsBadCertificate: a certificate that cannot be served stops
// the gateway with an error naming the file, before it serves or registers.
func TestRunRejectsBadCertificate(t *testing.T) {
	dir := t.TempDir()
	good := newTestCert(t, dir, "good")
	other := newTestCert(t, dir, "other")
	garbage := filepath.Join(dir, "garbage.crt")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, cert, key, want string
	}{
		{"missing certificate", filepath.Join(dir, "none.crt"), good.keyFile, "none.crt"},
		{"missing key", good.certFile, filepath.Join(dir, "none.key"), "none.key"},
		{"not PEM", garbage, good.keyFile, "garbage.crt"},
		{"key of another certificate", good.certFile, other.keyFile, "private key does not match"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := servicetest.Start(t, run, []string{"gateway", "--registry", "memory", "--server_address", "127.0.0.1:0",
				"--http_address", "127.0.0.1:0", "--http_tls_cert", tt.cert, "--http_tls_key", tt.key}, nil)
			err := r.Wait(t)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run = %v, want an error naming %s", err, tt.want)
			}
			if code := service.ExitCode(err); code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			if out := r.Out.String(); strings.Contains(out, "listening") || strings.Contains(out, "serving") {
				t.Errorf("started before the error:\n%s", out)
			}
		})
	}
}

// TestProbeHTTPS: --health_probe's check passes against the gateway over
// HTTPS with its own certificate, and fails against a server with another
// certificate (another process on the port) or without TLS.
func TestProbeHTTPS(t *testing.T) {
	dir := t.TempDir()
	cert := newTestCert(t, dir, "gateway-https")
	probeWith := func(addr string) error {
		return httpConfig{Address: addr, TLSCert: cert.certFile, TLSKey: cert.keyFile}.probe()
	}

	if err := probeWith(startHTTPSServer(t, cert, newFixture(t, nil, nil, nil))); err != nil {
		t.Errorf("probe against the gateway's HTTPS: %v", err)
	}
	other := newTestCert(t, dir, "other")
	if err := probeWith(startHTTPSServer(t, other, newFixture(t, nil, nil, nil))); err == nil {
		t.Error("probe passed against a server with another certificate")
	}
	if err := probeWith(startHTTPServer(t, lenient(), newFixture(t, nil, nil, nil))); err == nil {
		t.Error("probe over HTTPS passed against plain HTTP")
	}
}

// TestRunProbeAsksHTTPS: --health_probe of a gateway started with a
// certificate asks /readyz over HTTPS (503 here: nothing is registered in
// the gateway's memory registry), not plain HTTP.
func TestRunProbeAsksHTTPS(t *testing.T) {
	cert := newTestCert(t, t.TempDir(), "gateway-https")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	tlsEnv := map[string]string{"HTTP_ADDRESS": addr, "HTTP_TLS_CERT": cert.certFile, "HTTP_TLS_KEY": cert.keyFile}
	r := servicetest.Start(t, run, []string{"gateway", "--registry", "memory", "--server_address", "127.0.0.1:0", "--shutdown_drain", "0s"}, tlsEnv)
	r.MustServe(t)

	err = servicetest.Start(t, run, []string{"gateway", "--health_probe"}, tlsEnv).Wait(t)
	if err == nil || !strings.Contains(err.Error(), "https://") || !strings.Contains(err.Error(), "503") {
		t.Errorf("--health_probe = %v, want https://.../readyz answering 503", err)
	}
	r.MustStop(t)
}

// TestCertFilesReload: a certificate written over the files is served from
// the next handshake on; a new certificate whose key is not written yet
// leaves the previous one in service until the key follows.
func TestCertFilesReload(t *testing.T) {
	dir := t.TempDir()
	first := newTestCert(t, dir, "gateway-https")
	var log bytes.Buffer
	certs, err := loadCertFiles(first.certFile, first.keyFile, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	served := func() *x509.Certificate {
		t.Helper()
		c, err := certs.getCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf
	}
	// touch gives a file a modification time later than any before, as a
	// new write does on a file system with a coarse clock.
	later := time.Now()
	touch := func(file string) {
		later = later.Add(time.Minute)
		if err := os.Chtimes(file, later, later); err != nil {
			t.Fatal(err)
		}
	}
	if !served().Equal(first.leaf) {
		t.Fatal("not serving the certificate loaded")
	}

	// A rotation: the new certificate first, then its key.
	next := newTestCert(t, t.TempDir(), "next")
	copyFile(t, next.certFile, first.certFile)
	touch(first.certFile)
	if !served().Equal(first.leaf) {
		t.Error("serving a certificate without its key")
	}
	if !strings.Contains(log.String(), "not reloaded") {
		t.Errorf("the failed reload is not logged:\n%s", log.String())
	}
	copyFile(t, next.keyFile, first.keyFile)
	touch(first.keyFile)
	if !served().Equal(next.leaf) {
		t.Error("the new certificate is not served once its key is written")
	}
}

func copyFile(tb testing.TB, from, to string) {
	tb.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		tb.Fatal(err)
	}
}
