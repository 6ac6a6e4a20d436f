package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certFiles is the gateway's HTTPS certificate, read again from its files
// when either changes: a renewed certificate is served from the next
// connection on, without a restart.
type certFiles struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	certMod time.Time // modification times of the files last read
	keyMod  time.Time
}

// loadCertFiles reads the certificate and key, failing if either cannot be
// read or they do not make a pair.
func loadCertFiles(certFile, keyFile string, log *slog.Logger) (*certFiles, error) {
	c := &certFiles{certFile: certFile, keyFile: keyFile, log: log}
	certMod, keyMod, err := c.modTimes()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("https certificate %s, key %s: %w", certFile, keyFile, err)
	}
	c.cert, c.certMod, c.keyMod = &cert, certMod, keyMod
	return c, nil
}

func (c *certFiles) modTimes() (certMod, keyMod time.Time, err error) {
	ci, err := os.Stat(c.certFile)
	if err != nil {
		return certMod, keyMod, fmt.Errorf("https certificate: %w", err)
	}
	ki, err := os.Stat(c.keyFile)
	if err != nil {
		return certMod, keyMod, fmt.Errorf("https key: %w", err)
	}
	return ci.ModTime(), ki.ModTime(), nil
}

// getCertificate is tls.Config.GetCertificate: the certificate, read again
// first if a file changed since. A pair that cannot be loaded (such as a
// new certificate whose key is not written yet) leaves the previous one in
// service, and is tried again when a file changes again.
func (c *certFiles) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	certMod, keyMod, err := c.modTimes()
	if err != nil || (certMod.Equal(c.certMod) && keyMod.Equal(c.keyMod)) {
		return c.cert, nil
	}
	c.certMod, c.keyMod = certMod, keyMod
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		c.log.Warn("https certificate not reloaded; serving the previous one", "err", err)
		return c.cert, nil
	}
	c.cert = &cert
	c.log.Info("https certificate reloaded", "file", c.certFile)
	return c.cert, nil
}

// serverTLS is the gateway's HTTPS configuration. TLS 1.2 is the oldest
// version any current client needs; the cipher suites and curves are Go's
// defaults, which the Go team keeps current (a list of our own would
// only age).
func (c *certFiles) serverTLS() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.getCertificate}
}

// probeTLS is how --health_probe checks the gateway it runs beside: it
// trusts only the certificate in certFile, under the first name that
// certificate is for. Verifying (not skipping verification) means the probe
// fails, as every client would, on an expired certificate or on another
// process answering on the port; and it needs no name for 127.0.0.1 in a
// certificate made for the gateway's public name.
func probeTLS(certFile string) (*tls.Config, error) {
	data, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("https certificate: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("https certificate %s: no PEM certificate", certFile)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("https certificate %s: %w", certFile, err)
	}
	var name string
	switch {
	case len(leaf.DNSNames) > 0:
		name = leaf.DNSNames[0]
	case len(leaf.IPAddresses) > 0:
		name = leaf.IPAddresses[0].String()
	default:
		return nil, errors.New("https certificate " + certFile + ": names no host (no DNS or IP subject alternative name)")
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return &tls.Config{RootCAs: roots, ServerName: name, MinVersion: tls.VersionTLS12}, nil
}
