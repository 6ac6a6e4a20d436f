package devcerts

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestWriteKeepsWhatExistsAndAddsWhatIsMissing(t *testing.T) {
	dir := t.TempDir()
	wrote, err := Write(dir, []string{"user", "hello"}, "gateway-https", 0o600)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ca.crt", "ca.key", "user.crt", "user.key", "hello.crt", "hello.key", "gateway-https.crt", "gateway-https.key"}
	if !slices.Equal(wrote, want) {
		t.Fatalf("first run wrote %v, want %v", wrote, want)
	}
	before := map[string][]byte{}
	for _, f := range want {
		before[f] = mustRead(t, filepath.Join(dir, f))
	}

	// A service added later (make new): only its certificate is written,
	// and the keys get the mode asked for this time.
	wrote, err = Write(dir, []string{"user", "hello", "orders"}, "gateway-https", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"orders.crt", "orders.key"}; !slices.Equal(wrote, want) {
		t.Fatalf("second run wrote %v, want %v", wrote, want)
	}
	for f, b := range before {
		if !bytes.Equal(mustRead(t, filepath.Join(dir, f)), b) {
			t.Errorf("%s changed on the second run", f)
		}
	}
	for f, mode := range map[string]os.FileMode{"ca.key": 0o600, "user.key": 0o644, "orders.key": 0o644, "orders.crt": 0o644} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v (%v), want %v", f, fi.Mode().Perm(), err, mode)
		}
	}

	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(mustRead(t, filepath.Join(dir, "ca.crt"))) {
		t.Fatal("ca.crt: no certificate")
	}
	for name, hosts := range map[string][]string{"user": {"user"}, "orders": {"orders"}, "gateway-https": {"localhost", "127.0.0.1"}} {
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, h := range hosts {
			for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
				if _, err := pair.Leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
					t.Errorf("%s for %s, usage %v: %v", name, h, usage, err)
				}
			}
		}
		if err := pair.Leaf.VerifyHostname("hello"); err == nil {
			t.Errorf("%s's certificate is valid for hello too", name)
		}
	}
}

func TestWriteReplacesACertificateOfAnotherCA(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	for _, d := range []string{dir, other} {
		if _, err := Write(d, []string{"user"}, "", 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"user.crt", "user.key"} {
		if err := os.WriteFile(filepath.Join(dir, f), mustRead(t, filepath.Join(other, f)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	wrote, err := Write(dir, []string{"user"}, "", 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"user.crt", "user.key"}; !slices.Equal(wrote, want) {
		t.Errorf("wrote %v, want %v: a certificate of another CA must be replaced", wrote, want)
	}
}

func TestWriteRefusesBadNames(t *testing.T) {
	for _, name := range []string{"", "User", "../etc/x", "a b", "-x", "x.y"} {
		dir := t.TempDir()
		if _, err := Write(dir, []string{name}, "", 0o600); err == nil {
			t.Errorf("Write(%q) = nil error, want one", name)
		}
		if entries, _ := os.ReadDir(dir); len(entries) > 0 {
			t.Errorf("Write(%q) wrote %d files before refusing", name, len(entries))
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
