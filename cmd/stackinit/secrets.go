package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/example/micro-starter/internal/regauth"
)

// The files of the secrets step, in its folder. Each service's own are
// <service>.consul-token and <service>.etcd-password.
const (
	managementFile   = "consul-management.token"
	rootPasswordFile = "etcd-root.password"
	consulACLFile    = "consul-acl.json" // the Consul agent's -config-file
	stackinitFile    = "stackinit.json"  // what the init step reads
)

// secrets is what the init step needs: every credential of the stack.
type secrets struct {
	ConsulManagementToken string
	EtcdRootPassword      string
	Accounts              []regauth.Account
}

// writeSecrets makes sure dir holds a credential file for the stack and
// each of services, each with mode: an existing one is kept (its mode set),
// a missing one is made. Then it writes the two files derived from them
// (the Consul agent's ACL config, the init step's input, and each service's
// compose env files) if they differ, and closes dir to everyone but its owner. It returns the
// names of the files it wrote.
func writeSecrets(dir string, services []string, mode fs.FileMode) ([]string, error) {
	// The files are readable by -key-mode's group or others when the
	// containers' users need them (they mount each file alone); the folder
	// keeps everyone but its owner out on this machine.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	var wrote []string
	ensure := func(name string, generate func() (string, error), check func(string) error) (string, error) {
		p := filepath.Join(dir, name)
		b, err := os.ReadFile(p)
		if err == nil {
			v := strings.TrimSpace(string(b))
			if err := check(v); err != nil {
				return "", fmt.Errorf("%s: %w (remove it to make a new one)", p, err)
			}
			return v, os.Chmod(p, mode)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		v, err := generate()
		if err != nil {
			return "", err
		}
		wrote = append(wrote, name)
		return v, writeFile(p, []byte(v+"\n"), mode)
	}

	var s secrets
	var err error
	if s.ConsulManagementToken, err = ensure(managementFile, newUUID, checkUUID); err != nil {
		return wrote, err
	}
	if s.EtcdRootPassword, err = ensure(rootPasswordFile, newPassword, checkPassword); err != nil {
		return wrote, err
	}
	for _, name := range services {
		a := regauth.Account{Name: name}
		if a.ConsulToken, err = ensure(name+".consul-token", newUUID, checkUUID); err != nil {
			return wrote, err
		}
		if a.EtcdPassword, err = ensure(name+".etcd-password", newPassword, checkPassword); err != nil {
			return wrote, err
		}
		s.Accounts = append(s.Accounts, a)
	}

	acl, err := consulACL(s.ConsulManagementToken)
	if err != nil {
		return wrote, err
	}
	input, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return wrote, err
	}
	type derived struct {
		name string
		data []byte
	}
	files := []derived{{consulACLFile, acl}, {stackinitFile, append(input, '\n')}}
	// What a service's container needs besides the shared settings of
	// deploy/<registry>.env: compose reads these as env_file.
	for _, a := range s.Accounts {
		files = append(files,
			derived{a.Name + ".consul.env", []byte("MICRO_REGISTRY_TOKEN=" + a.ConsulToken + "\n")},
			derived{a.Name + ".etcd.env", []byte("MICRO_REGISTRY_USERNAME=" + a.Name + "\n")})
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, f.data) {
			if err := os.Chmod(p, mode); err != nil {
				return wrote, err
			}
			continue
		}
		if err := writeFile(p, f.data, mode); err != nil {
			return wrote, err
		}
		wrote = append(wrote, f.name)
	}
	return wrote, nil
}

// consulACL is the Consul agent's config: ACLs on, everything denied
// unless a token allows it, the management token made on first start.
// The agent's own token is the management one too, so that the
// development agent may update its node; a production agent has a token
// of its own (docs/security.md).
func consulACL(managementToken string) ([]byte, error) {
	type tokens struct {
		InitialManagement string `json:"initial_management"`
		Agent             string `json:"agent"`
	}
	type acl struct {
		Enabled       bool   `json:"enabled"`
		DefaultPolicy string `json:"default_policy"`
		Tokens        tokens `json:"tokens"`
	}
	b, err := json.MarshalIndent(struct {
		ACL acl `json:"acl"`
	}{acl{true, "deny", tokens{managementToken, managementToken}}}, "", "  ")
	return append(b, '\n'), err
}

// writeFile replaces p with data, with mode, through a temporary file, so
// that a reader never sees half a file.
func writeFile(p string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), ".stackinit-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a failure; gone once renamed
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// newUUID is a random (version 4) UUID: Consul wants its tokens' secrets
// in that form.
func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:]), nil
}

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func checkUUID(s string) error {
	if !uuidPattern.MatchString(s) {
		return errors.New("not a UUID, which Consul wants as a token")
	}
	return nil
}

// newPassword is 32 random bytes, base64url: 43 characters.
func newPassword() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func checkPassword(s string) error {
	if len(s) < 16 {
		return errors.New("a password of fewer than 16 characters")
	}
	return nil
}
