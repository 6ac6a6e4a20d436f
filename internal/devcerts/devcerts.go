// Package devcerts writes a development certificate authority and
// certificates signed by it: one per service, for mutual TLS between
// services (`make certs`, tests), and one for HTTPS on localhost.
//
// For development and tests only: the CA's key lies beside the
// certificates, so anyone who can read the folder can mint identities.
// Production uses certificates from a real CA (docs/security.md).
package devcerts

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 2 * 365 * 24 * time.Hour
	// A certificate closer than this to its end is written again.
	renewBefore = 30 * 24 * time.Hour
)

// CA is the development CA whose files are in one folder.
type CA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// LoadOrCreateCA reads dir/ca.crt and dir/ca.key, or writes a new CA there
// if neither exists (its key 0600, whatever mode the services' keys get).
func LoadOrCreateCA(dir string) (ca *CA, created bool, err error) {
	crt, key := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	_, crtErr := os.Stat(crt)
	_, keyErr := os.Stat(key)
	if errors.Is(crtErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist) {
		ca, err := newCA(dir, crt, key)
		return ca, err == nil, err
	}
	pair, err := tls.LoadX509KeyPair(crt, key)
	if err != nil {
		return nil, false, fmt.Errorf("CA in %s: %w (remove ca.crt and ca.key to make a new one)", dir, err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok || !pair.Leaf.IsCA {
		return nil, false, fmt.Errorf("CA in %s: %s is not a CA certificate", dir, crt)
	}
	return &CA{cert: pair.Leaf, key: signer}, false, nil
}

func newCA(dir, crtPath, keyPath string) (*CA, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl, err := template("micro-starter development CA", caValidity)
	if err != nil {
		return nil, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	if err := writePair(crtPath, keyPath, der, key, 0o600); err != nil {
		return nil, err
	}
	return &CA{cert: cert, key: key}, nil
}

// nameRE is what a service name may be: a DNS label, as `make new` accepts.
var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// CheckName rejects a name that cannot be a service's DNS name.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("name %q: want a lowercase letter, then lowercase letters, digits or -", name)
	}
	return nil
}

// Service writes dir/<name>.crt and dir/<name>.key: a certificate naming
// the service (DNS SAN name) that serves as its server certificate and as
// its client certificate alike. A valid one already there, signed by ca,
// is kept; written reports whether the files were (re)written.
func (ca *CA) Service(dir, name string, keyMode fs.FileMode) (written bool, err error) {
	if err := CheckName(name); err != nil {
		return false, err
	}
	return ca.ensure(dir, name, []string{name}, keyMode)
}

// HTTPS writes dir/<name>.crt and dir/<name>.key for an HTTPS server on
// this machine: SANs localhost and 127.0.0.1. Kept if valid, as Service.
func (ca *CA) HTTPS(dir, name string, keyMode fs.FileMode) (written bool, err error) {
	return ca.ensure(dir, name, []string{"localhost", "127.0.0.1"}, keyMode)
}

func (ca *CA) ensure(dir, name string, hosts []string, keyMode fs.FileMode) (bool, error) {
	crt, key := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if ca.valid(crt, key, hosts) {
		return false, os.Chmod(key, keyMode)
	}
	if err := ca.write(crt, key, name, hosts, keyMode); err != nil {
		return false, fmt.Errorf("%s: %w", name, err)
	}
	return true, nil
}

// valid reports whether crt and key are a pair that ca signed for hosts,
// good for a while yet.
func (ca *CA) valid(crt, key string, hosts []string) bool {
	pair, err := tls.LoadX509KeyPair(crt, key)
	if err != nil {
		return false
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	for _, h := range hosts {
		_, err := pair.Leaf.Verify(x509.VerifyOptions{
			DNSName:     h,
			Roots:       roots,
			CurrentTime: time.Now().Add(renewBefore),
			KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		})
		if err != nil {
			return false
		}
	}
	return true
}

func (ca *CA) write(crt, keyPath, name string, hosts []string, keyMode fs.FileMode) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl, err := template(name, leafValidity)
	if err != nil {
		return err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	// The same certificate serves calls (server) and makes them (client).
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return err
	}
	return writePair(crt, keyPath, der, key, keyMode)
}

func template(cn string, validity time.Duration) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"micro-starter development"}},
		NotBefore:    now.Add(-time.Hour), // tolerate clocks a little behind
		NotAfter:     now.Add(validity),
	}, nil
}

// writePair writes the key before the certificate, each through a
// temporary file renamed into place, so that a certificate on disk always
// has its key and a reader never sees half a file.
func writePair(crtPath, keyPath string, der []byte, key *ecdsa.PrivateKey, keyMode fs.FileMode) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), keyMode); err != nil {
		return err
	}
	return writeFile(crtPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeFile(path string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil { // not subject to the umask
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Write makes dir a complete development set: the CA (kept if present), a
// certificate per service and one for HTTPS named https (skipped if empty),
// each kept if present and valid. It returns the names of the files it
// wrote, for a report.
func Write(dir string, services []string, https string, keyMode fs.FileMode) ([]string, error) {
	for _, s := range services {
		if err := CheckName(s); err != nil {
			return nil, err
		}
	}
	ca, created, err := LoadOrCreateCA(dir)
	if err != nil {
		return nil, err
	}
	var wrote []string
	if created {
		wrote = append(wrote, "ca.crt", "ca.key")
	}
	for _, s := range services {
		w, err := ca.Service(dir, s, keyMode)
		if err != nil {
			return wrote, err
		}
		if w {
			wrote = append(wrote, s+".crt", s+".key")
		}
	}
	if https != "" {
		w, err := ca.HTTPS(dir, https, keyMode)
		if err != nil {
			return wrote, err
		}
		if w {
			wrote = append(wrote, https+".crt", https+".key")
		}
	}
	return wrote, nil
}

// MustWrite writes a new CA and a certificate for each service into a
// temporary folder of tb's, and returns the folder.
func MustWrite(tb testing.TB, services ...string) string {
	tb.Helper()
	dir := tb.TempDir()
	if _, err := Write(dir, services, "", 0o600); err != nil {
		tb.Fatal(err)
	}
	return dir
}
