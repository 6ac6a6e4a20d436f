package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// binDir holds the services, bench/plain's in plain/, and etcd: what
// -bin names for `make bench`.
var binDir string

func TestMain(m *testing.M) {
	// The bare chains and the sink are this binary run as a subcommand:
	// here, the test binary.
	if len(os.Args) > 1 && slices.Contains([]string{"hop", "grpchop", "sink"}, os.Args[1]) {
		if err := subcommand(os.Args[1], os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, os.Args[1]+":", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "micro-starter-load-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	for _, b := range [][]string{{dir, "./services/..."}, {filepath.Join(dir, "plain"), "./bench/plain/..."}} {
		build := exec.Command("go", "build", "-o", b[0]+string(filepath.Separator), b[1])
		build.Dir = filepath.Join("..", "..") // the module root
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", b[1], err, out)
			return 1
		}
	}
	if etcd, err := exec.LookPath("etcd"); err == nil {
		if err := os.Symlink(etcd, filepath.Join(dir, "etcd")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	binDir = dir
	return m.Run()
}

// Every stack runs one short round and is measured: so that `make bench`
// cannot rot between its runs. The figures are not checked, only that each
// stack answered every request and that each hop was measured where it can
// be.
func TestEveryStackMeasured(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and every stack")
	}
	if _, err := os.Stat(filepath.Join(binDir, "etcd")); err != nil {
		t.Fatal("etcd not on PATH: make test puts bin/ (make tools) on PATH")
	}
	var out bytes.Buffer
	o := options{bin: binDir, registries: "etcd", stacks: strings.Join(allStacks, ","), otlp: "sink",
		conns: 4, rounds: 1, duration: 300 * time.Millisecond, out: &out}
	if err := run(o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	report := out.String()
	for _, tc := range []struct {
		stack  string
		allocs bool // its hops serve go_memstats_mallocs_total
	}{
		{"bare", true}, {"grpc", true}, {"plain", false}, {"ours", true},
		{"ours-nometrics", false}, {"ours-notracing", true}, {"ours-trace0", true}, {"ours-trace100", true},
	} {
		t.Run(tc.stack, func(t *testing.T) {
			// | stack | median req/s | median p50 ms | median p99 ms | errors |
			m := regexp.MustCompile(`(?m)^\| ` + regexp.QuoteMeta(tc.stack) + ` \| (\d+) \| [\d.]+ \| [\d.]+ \| (\d+) \|$`).FindStringSubmatch(report)
			if m == nil || m[1] == "0" || m[2] != "0" {
				t.Fatalf("median row of %s: %q, want requests answered and 0 errors\n%s", tc.stack, m, report)
			}
			row := usageRow(t, report, tc.stack)
			// stack, requests, gateway, hello, user, services CPU, receiver,
			// load generator, gateway, hello, user, services allocs, ...
			for _, i := range []int{2, 3, 4, 5, 7} {
				if row[i] == "-" {
					t.Errorf("%s: CPU column %d not measured: %v", tc.stack, i, row)
				}
			}
			if got := row[11] != "-"; got != tc.allocs {
				t.Errorf("%s: allocations measured %v, want %v: %v", tc.stack, got, tc.allocs, row)
			}
			// Every hop writes its answers: bytes and write calls measured.
			if io := ioRow(t, report, tc.stack); slices.Contains(io[1:], "0.0") || slices.Contains(io[1:], "0.000") {
				t.Errorf("%s: bytes or writes not measured: %v", tc.stack, io)
			}
		})
	}
	if !strings.Contains(report, "| ours-trace100 |") || !strings.Contains(report, "Cost of metrics and tracing") {
		t.Errorf("no cost table:\n%s", report)
	}
}

// ioRow is the stack's row of the bytes-written table.
func ioRow(t *testing.T, report, stack string) []string {
	t.Helper()
	return tableRow(t, report, "| stack | gateway bytes |", 7, stack)
}

// usageRow is the stack's row of the per-hop table.
func usageRow(t *testing.T, report, stack string) []string {
	t.Helper()
	return tableRow(t, report, "| stack | requests |", 14, stack)
}

// tableRow is the cells of stack's row in the table of report headed by
// header, which has cols columns.
func tableRow(t *testing.T, report, header string, cols int, stack string) []string {
	t.Helper()
	_, table, ok := strings.Cut(report, header)
	if !ok {
		t.Fatalf("no table headed %q:\n%s", header, report)
	}
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cells) == cols && cells[0] == stack {
			return cells
		}
	}
	t.Fatalf("no row for %s in the table headed %q:\n%s", stack, header, report)
	return nil
}
