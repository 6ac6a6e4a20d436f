package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMakePassesArgumentsVerbatim runs `make new` and `make rename` with
// arguments that run a command if make or the shell parses them, as the
// Makefile's '$(name)' once did: each must reach scaffold as typed, be
// refused, and run nothing. The payloads start with a name scaffold
// refuses, so that even a Makefile that splits them never adds a service.
// make -o skips the protoc and plugin prerequisites, which these runs
// never reach; BIN keeps the scaffold binary out of the repository.
func TestMakePassesArgumentsVerbatim(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make not on PATH")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, target, variable, value, wantErr string
	}{
		{"single quotes", "new", "name", "X' || touch MARK || echo '", "service name %q:"},
		{"double quotes", "new", "name", `X"; touch MARK; echo "`, "service name %q:"},
		{"command substitution", "new", "name", "X$(touch MARK)`touch MARK`", "service name %q:"},
		{"make function", "new", "name", "X$(shell touch MARK)", "service name %q:"},
		{"rename, single quotes", "rename", "module", "X' || touch MARK || echo '", "malformed module path %q"},
		{"rename, make function", "rename", "module", "X$(shell touch MARK)", "malformed module path %q"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			mark := filepath.Join(dir, "ran")
			value := strings.ReplaceAll(tt.value, "MARK", mark)
			bin := filepath.Join(dir, "bin")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "-C", root,
				"-o", "protoc", "-o", bin+"/protoc-gen-go", "-o", bin+"/protoc-gen-micro",
				"BIN="+bin, tt.target, tt.variable+"="+value)
			// Not a sub-make of a make running this test.
			for _, kv := range os.Environ() {
				if k, _, _ := strings.Cut(kv, "="); k != "MAKEFLAGS" && k != "MFLAGS" && k != "MAKELEVEL" {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			out, err := cmd.CombinedOutput()
			if _, statErr := os.Stat(mark); !errors.Is(statErr, fs.ErrNotExist) {
				t.Errorf("make %s %s=%s ran the command in it (%s exists)", tt.target, tt.variable, value, mark)
			}
			if err == nil {
				t.Errorf("make %s %s=%s succeeded, want it refused:\n%s", tt.target, tt.variable, value, out)
			}
			if want := "scaffold: " + fmt.Sprintf(tt.wantErr, value); !strings.Contains(string(out), want) {
				t.Errorf("make %s: output lacks %s, the argument as typed:\n%s", tt.target, want, out)
			}
		})
	}
}
