// Package mtls loads an instance's identity for mutual TLS between
// services (a CA, a certificate and its key, in PEM files) and makes the
// TLS configurations of its RPC server and of its calls to another service.
//
// The server accepts only clients with a certificate signed by the CA. A
// call accepts the callee only if its certificate, signed by the CA, names
// the service called (a DNS name such as "user"): an instance registered
// under a name it has no certificate for cannot serve that name's calls.
//
// The certificate and key are read again when their files change (checked
// at most every reloadCheck, at a handshake), so a renewed certificate is
// used without a restart. The CA is read once: a new CA needs a restart.
package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"
)

// Files names the PEM files of an identity; all empty for none.
type Files struct {
	CA   string // the CA that signs every service's certificate
	Cert string // this instance's certificate (it may carry intermediates after it)
	Key  string // its private key
}

// Enabled reports whether any file is set.
func (f Files) Enabled() bool { return f != Files{} }

// Validate requires all three files or none.
func (f Files) Validate() error {
	if f.Enabled() && (f.CA == "" || f.Cert == "" || f.Key == "") {
		return errors.New("tls: set the CA, certificate and key files together (--tls_ca, --tls_cert, --tls_key), or none")
	}
	return nil
}

// reloadCheck is how often, at most, a handshake looks whether the
// certificate or key file changed: a stat of each.
const reloadCheck = 5 * time.Second

// Identity is a loaded identity. It is safe for concurrent use.
type Identity struct {
	files Files
	roots *x509.CertPool
	log   *slog.Logger
	every time.Duration

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   stamp // of the files cert was read from
	checked time.Time
}

// stamp tells a changed file from an unchanged one without reading it.
type stamp [2]struct {
	mod  time.Time
	size int64
}

// Load reads and checks the files: the CA must parse, the key must match
// the certificate, and the CA must have signed it for use as a server and
// as a client. log reports reloads and files that fail to reload.
func Load(f Files, log *slog.Logger) (*Identity, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("tls: CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls: CA %s: no PEM certificate in it", f.CA)
	}
	id := &Identity{files: f, roots: roots, log: log, every: reloadCheck}
	st, err := id.statFiles()
	if err != nil {
		return nil, err
	}
	cert, err := id.read()
	if err != nil {
		return nil, err
	}
	id.cert, id.stamp, id.checked = cert, st, time.Now()
	return id, nil
}

// Names are the DNS names the current certificate is valid for.
func (id *Identity) Names() []string { return slices.Clone(id.certificate().Leaf.DNSNames) }

// ServerConfig is the TLS of the RPC server: TLS 1.3, and a client
// certificate signed by the CA is required.
func (id *Identity) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  id.roots,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return id.certificate(), nil
		},
	}
}

// ClientConfig is the TLS of calls to service: the callee's certificate
// must be signed by the CA and name service, which crypto/tls checks
// (ServerName); this instance's certificate is presented as the client's.
func (id *Identity) ClientConfig(service string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    id.roots,
		ServerName: service,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return id.certificate(), nil
		},
	}
}

// certificate returns the current certificate, first reading the files
// again if they changed since. A file that fails to load keeps the old
// certificate in use, and is tried again at the next check: a certificate
// written before its key is a mismatch for a moment.
func (id *Identity) certificate() *tls.Certificate {
	id.mu.Lock()
	defer id.mu.Unlock()
	if time.Since(id.checked) < id.every {
		return id.cert
	}
	id.checked = time.Now()
	st, err := id.statFiles()
	if err != nil || st == id.stamp {
		return id.cert
	}
	cert, err := id.read()
	if err != nil {
		id.log.Warn("tls: certificate changed on disk but does not load: still using the previous one", "err", err)
		return id.cert
	}
	id.cert, id.stamp = cert, st
	id.log.Info("tls: certificate reloaded", "file", id.files.Cert, "names", cert.Leaf.DNSNames, "not_after", cert.Leaf.NotAfter)
	return id.cert
}

func (id *Identity) statFiles() (stamp, error) {
	var st stamp
	for i, p := range []string{id.files.Cert, id.files.Key} {
		fi, err := os.Stat(p)
		if err != nil {
			return st, fmt.Errorf("tls: %w", err)
		}
		st[i].mod, st[i].size = fi.ModTime(), fi.Size()
	}
	return st, nil
}

// read loads the key pair and checks that the CA signed it for both uses.
func (id *Identity) read() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(id.files.Cert, id.files.Key)
	if err != nil {
		return nil, fmt.Errorf("tls: certificate %s, key %s: %w", id.files.Cert, id.files.Key, err)
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("tls: certificate %s: %w", id.files.Cert, err)
		}
		inter.AddCert(c)
	}
	// One usage at a time: Verify accepts a chain good for any one listed.
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		_, err = cert.Leaf.Verify(x509.VerifyOptions{Roots: id.roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}})
		if err != nil {
			return nil, fmt.Errorf("tls: certificate %s against the CA %s: %w", id.files.Cert, id.files.CA, err)
		}
	}
	return &cert, nil
}
