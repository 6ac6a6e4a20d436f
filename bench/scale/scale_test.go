package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSmoke measures both registries at a tiny size, so that make scale
// cannot rot: every lookup answers with every instance, every change
// reaches every watcher, and each phase is timed. The figures are not
// checked.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Consul and etcd")
	}
	c, err := parse([]string{"scale", "-instances", "3", "-services", "2", "-watchers", "3",
		"-lookups", "5", "-cached", "20", "-changes", "2", "-steady", "200ms"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		cluster bool
		members int
	}{{"consul", false, 1}, {"etcd", false, 1}, {"consul", true, 4}, {"etcd", true, 3}} {
		name := tt.name
		if tt.cluster {
			name += "-cluster"
		}
		t.Run(name, func(t *testing.T) {
			res, err := measure(t.Context(), c, t.TempDir(), tt.name, tt.cluster, 3)
			if err != nil {
				t.Fatal(err)
			}
			if res.version == "" || res.members != tt.members {
				t.Errorf("registry version %q, %d processes; want a version and %d", res.version, res.members, tt.members)
			}
			if got, want := len(res.uncached), c.watchers*c.lookups; got != want {
				t.Errorf("%d lookups from the registry timed, want %d", got, want)
			}
			if got, want := len(res.cached), c.watchers*c.cached; got != want {
				t.Errorf("%d lookups from the cache timed, want %d", got, want)
			}
			if res.lookupErrors != 0 || res.cachedErrors != 0 {
				t.Errorf("lookups failed or missed an instance: %d from the registry, %d from the cache", res.lookupErrors, res.cachedErrors)
			}
			if res.missed != 0 || len(res.added) != c.changes || len(res.removed) != c.changes {
				t.Errorf("changes: %d joins and %d leaves seen by every watcher, %d deliveries missed; want %d, %d, 0",
					len(res.added), len(res.removed), res.missed, c.changes, c.changes)
			}
			if got, want := len(res.addedEach), c.changes*c.watchers; got != want {
				t.Errorf("%d deliveries of joins timed, want %d", got, want)
			}
			if res.steady < 200*time.Millisecond {
				t.Errorf("at rest for %v, want 200ms", res.steady)
			}
		})
	}
}

// TestRunWritesSection: the results replace the marked section of -out
// and nothing else.
func TestRunWritesSection(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	out := filepath.Join(t.TempDir(), "scaling.md")
	before, after := "# Scaling\n\nabove\n", "\nbelow\n"
	if err := os.WriteFile(out, []byte(before+beginMarker+"\nold figures\n"+endMarker+after), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout strings.Builder
	err := run(context.Background(), []string{"scale", "-registries", "etcd", "-topologies", "single", "-instances", "2", "-watchers", "2",
		"-lookups", "2", "-cached", "2", "-changes", "1", "-steady", "100ms", "-out", out}, os.Getenv, &stdout)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stdout.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	if !strings.HasPrefix(doc, before+beginMarker+"\n") || !strings.HasSuffix(doc, endMarker+after) {
		t.Errorf("text outside the markers changed:\n%s", doc)
	}
	if strings.Contains(doc, "old figures") || !strings.Contains(doc, "\n| etcd | 1 | 2 | ") {
		t.Errorf("section not replaced by a row for etcd with 2 instances:\n%s", doc)
	}
}

func TestWriteSectionNeedsMarkers(t *testing.T) {
	out := filepath.Join(t.TempDir(), "scaling.md")
	if err := os.WriteFile(out, []byte("no markers\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeSection(out, "x"); err == nil {
		t.Error("writeSection: nil error on a file without markers")
	}
	if b, _ := os.ReadFile(out); string(b) != "no markers\n" {
		t.Errorf("file changed to %q", b)
	}
}

func TestParseRejects(t *testing.T) {
	for _, args := range [][]string{
		{"-registries", "mdns"},
		{"-instances", "0"},
		{"-topologies", "single,ring"},
		{"-instances", "10,x"},
		{"-watchers", "0"},
		{"-steady", "0s"},
		{"extra"},
	} {
		_, err := parse(append([]string{"scale"}, args...), io.Discard)
		if _, ok := err.(*usageError); !ok {
			t.Errorf("parse %q: %v, want a usage error", args, err)
		}
	}
}

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var ds []time.Duration
		for _, n := range ns {
			ds = append(ds, time.Duration(n)*time.Millisecond)
		}
		return ds
	}
	tests := []struct {
		in   []time.Duration
		q    int
		want time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 99, 7 * time.Millisecond},
		{ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{ms(4, 1, 3, 2), 100, 4 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := pct(tt.in, tt.q); got != tt.want {
			t.Errorf("pct(%v, %d) = %v, want %v", tt.in, tt.q, got, tt.want)
		}
	}
}

func TestParseStat(t *testing.T) {
	s, err := parseStat("42 (a (b) c) S 7 42 42 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 1 0 5 0 0")
	if err != nil {
		t.Fatal(err)
	}
	if s.comm != "a (b) c" || s.ppid != 7 || s.cpu != 281*clockTick {
		t.Errorf("parseStat = %+v, want comm %q, ppid 7, cpu %v", s, "a (b) c", 281*clockTick)
	}
	if _, err := parseStat("42 (x) S 7"); err == nil {
		t.Error("parseStat of a short line: nil error")
	}
}

// TestChildNamed finds a child process by its command name, as registryCPU
// finds the registry, and reads this process's own CPU time.
func TestChildNamed(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid, err := childNamed("sleep")
	if err != nil || pid != cmd.Process.Pid {
		t.Fatalf("childNamed = %d, %v; want %d", pid, err, cmd.Process.Pid)
	}
	if _, err := childNamed("no-such-command"); err == nil {
		t.Error("childNamed of a command not running: nil error")
	}
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	self, err := parseStat(string(b))
	if err != nil || self.ppid != os.Getppid() || self.cpu <= 0 {
		t.Errorf("own stat: %+v, %v; want ppid %d and some CPU time", self, err, os.Getppid())
	}
}
