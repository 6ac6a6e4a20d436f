package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/example/micro-starter/pkg/service/servicetest"
)

func TestRunUsageErrors(t *testing.T) {
	dupes := filepath.Join(t.TempDir(), "dupes.json")
	if err := os.WriteFile(dupes, []byte(`[{"id":"a","name":"A"},{"id":"a","name":"B"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"unknown registry", []string{"--registry", "zk"}, nil, `unknown registry "zk"`},
		{"register_ttl not a duration", []string{"--register_ttl", "abc"}, nil, "register_ttl"},
		{"unknown flag", []string{"--no_such_flag"}, nil, "no_such_flag"},
		{"unexpected argument", []string{"extra"}, nil, `unexpected argument "extra"`},
		{"MICRO_REGISTRY from the environment", nil, map[string]string{"MICRO_REGISTRY": "zk"}, `unknown registry "zk"`},
		{"MICRO_REGISTER_TTL from the environment", nil, map[string]string{"MICRO_REGISTER_TTL": "abc"}, "MICRO_REGISTER_TTL"},
		{"unknown selector", []string{"--selector", "weird"}, nil, `strategy "weird"`},
		{"ttl not longer than interval", []string{"--register_ttl", "5", "--register_interval", "5s"}, nil, "register interval"},
		{"empty registry address", []string{"--registry_address", "a:1,,b:2"}, nil, "empty entry"},
		{"users_file missing", []string{"--users_file", "/nonexistent/users.json"}, nil, "users file"},
		{"users_file invalid", []string{"--users_file", dupes}, nil, "duplicate id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The registry is memory so that a case that wrongly got past
			// the flags starts nothing on the network.
			args := append([]string{"user", "--registry", "memory"}, tt.args...)
			if _, ok := tt.env["MICRO_REGISTRY"]; ok {
				args = append([]string{"user"}, tt.args...)
			}
			servicetest.MustFailUsage(t, run, args, tt.env, tt.wantErr)
		})
	}
}

func TestRunHelp(t *testing.T) {
	servicetest.MustPrintHelp(t, run, "user", "-registry", "-server_address", "-users_file")
}

func TestRunStartsAndStops(t *testing.T) {
	r := servicetest.Start(t, run, []string{"user", "--registry", "memory", "--server_address", "127.0.0.1:0", "--shutdown_drain", "0s"}, nil)
	r.MustServe(t)
	r.MustStop(t)
}
