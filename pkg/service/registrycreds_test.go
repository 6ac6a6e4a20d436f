package service

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestRegistryCredentials: the registry's credentials come from flags and
// their variables, except the password, which is never a flag; it never
// shows in -h or in an error.
func TestRegistryCredentials(t *testing.T) {
	const password = "s3cret-pw"
	dir := t.TempDir()
	file := filepath.Join(dir, "password")
	if err := os.WriteFile(file, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	etcd := []string{"--registry", "etcd", "--registry_username", "user"}
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string // "" means parsed, with wantPassword
	}{
		{"password from MICRO_REGISTRY_PASSWORD", etcd, map[string]string{"MICRO_REGISTRY_PASSWORD": password}, ""},
		{"password from a file", append(etcd, "--registry_password_file", file), nil, ""},
		{"password file from its variable", etcd, map[string]string{"MICRO_REGISTRY_PASSWORD_FILE": file}, ""},
		{"both", append(etcd, "--registry_password_file", file), map[string]string{"MICRO_REGISTRY_PASSWORD": password}, "use one"},
		{"no password flag", append(etcd, "--registry_password", password), nil, "registry_password"},
		{"unreadable file", append(etcd, "--registry_password_file", filepath.Join(dir, "missing")), nil, "missing: no such file"},
		{"empty file", append(etcd, "--registry_password_file", empty), nil, "empty"},
		{"username without password", etcd, nil, "MICRO_REGISTRY_PASSWORD"},
		{"password with consul", []string{"--registry", "consul"}, map[string]string{"MICRO_REGISTRY_PASSWORD": password}, "for etcd"},
		{"token with etcd", []string{"--registry", "etcd", "--registry_token", "t"}, nil, "for consul"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, _, err := Setup{Name: "test"}.Parse(append([]string{"test"}, tc.args...), func(k string) string { return tc.env[k] }, &bytes.Buffer{})
			if tc.wantErr == "" {
				if err != nil || string(cfg.Registry.Password) != password || cfg.Registry.Username != "user" {
					t.Fatalf("err %v, username %q; want the password and no error", err, cfg.Registry.Username)
				}
				return
			}
			if ExitCode(err) != 2 || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want a usage error with %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}

	t.Run("token from MICRO_REGISTRY_TOKEN", func(t *testing.T) {
		cfg, _, _, err := Setup{Name: "test"}.Parse([]string{"test", "--registry", "consul"}, func(k string) string {
			return map[string]string{"MICRO_REGISTRY_TOKEN": "tok"}[k]
		}, &bytes.Buffer{})
		if err != nil || cfg.Registry.Token != "tok" {
			t.Fatalf("err %v, token set %v", err, cfg.Registry.Token != "")
		}
	})

	t.Run("-h", func(t *testing.T) {
		var out bytes.Buffer
		_, _, _, err := Setup{Name: "test"}.Parse([]string{"test", "-h"}, func(k string) string {
			return map[string]string{"MICRO_REGISTRY_PASSWORD": password, "MICRO_REGISTRY_TOKEN": password}[k]
		}, &out)
		if err != nil {
			t.Fatal(err)
		}
		for _, flag := range []string{"-registry_token", "-registry_username", "-registry_password_file", "-registry_tls_ca", "-registry_tls_cert", "-registry_tls_key"} {
			if !strings.Contains(out.String(), flag+" ") {
				t.Errorf("-h does not list %s", flag)
			}
		}
		if regexp.MustCompile(`-registry_password\s`).MatchString(out.String()) || strings.Contains(out.String(), password) {
			t.Errorf("-h lists a password flag or shows the password:\n%s", out.String())
		}
	})
}
