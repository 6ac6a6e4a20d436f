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
	servicetest.MustRejectUsage(t, run, []string{"user"},
		servicetest.UsageCase{Name: "users_file missing", Args: []string{"--users_file", "/nonexistent/users.json"}, Want: "users file"},
		servicetest.UsageCase{Name: "users_file invalid", Args: []string{"--users_file", dupes}, Want: "duplicate id"},
	)
}

func TestRunHelp(t *testing.T) {
	servicetest.MustPrintHelp(t, run, "user", "-registry", "-server_address", "-users_file")
}

func TestRunHealthProbe(t *testing.T) {
	servicetest.MustProbe(t, run, "user")
}

func TestRunStartsAndStops(t *testing.T) {
	r := servicetest.Start(t, run, []string{"user", "--registry", "memory", "--server_address", "127.0.0.1:0", "--shutdown_drain", "0s"}, nil)
	r.MustServe(t)
	r.MustStop(t)
}
