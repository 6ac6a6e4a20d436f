package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/example/micro-starter/internal/scaffold"
)

func TestRunUsageErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no command", nil, "want a command"},
		{"no argument", []string{"new"}, "want a command"},
		{"unknown command", []string{"delete", "x"}, `unknown command "delete"`},
		{"unknown flag", []string{"-force", "new", "x"}, "force"},
		{"bad name", []string{"-root", t.TempDir(), "new", "Orders"}, `service name "Orders"`},
		{"bad module", []string{"-root", t.TempDir(), "rename", "shop"}, "shop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), append([]string{"scaffold"}, tt.args...), func(string) string { return "" }, &out)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("run(%q) = %v, want an error containing %q", tt.args, err, tt.wantErr)
			}
			if !errors.Is(err, scaffold.ErrUsage) {
				t.Errorf("run(%q) = %v, not a usage error (exit status 2)", tt.args, err)
			}
		})
	}
}

func TestRunHelp(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"scaffold", "-h"}, func(string) string { return "" }, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "scaffold [-root dir] new <name>") {
		t.Errorf("usage:\n%s", out.String())
	}
}
