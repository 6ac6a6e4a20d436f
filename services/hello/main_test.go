package main

import (
	"testing"

	"github.com/example/micro-starter/pkg/service/servicetest"
)

func TestRunUsageErrors(t *testing.T) {
	servicetest.MustRejectUsage(t, run, []string{"hello"},
		servicetest.UsageCase{Name: "users_file is not hello's flag", Args: []string{"--users_file", "/nonexistent/users.json"}, Want: "users_file"},
	)
}

func TestRunHelp(t *testing.T) {
	servicetest.MustPrintHelp(t, run, "hello", "-registry", "-server_address", "-selector")
}

func TestRunHealthProbe(t *testing.T) {
	servicetest.MustProbe(t, run, "hello")
}

func TestRunStartsAndStops(t *testing.T) {
	r := servicetest.Start(t, run, []string{"hello", "--registry", "memory", "--server_address", "127.0.0.1:0", "--shutdown_drain", "0s"}, nil)
	r.MustServe(t)
	r.MustStop(t)
}
