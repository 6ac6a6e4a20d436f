package stack

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/example/micro-starter/internal/poll"
)

// startShell runs script in sh and returns once it has printed "ready",
// so that its traps are set.
func startShell(t *testing.T, script string) *Proc {
	t.Helper()
	p := MustStart(t, "sh", "/bin/sh", "-c", script+"; echo ready; while :; do sleep 0.05; done")
	poll.Eventually(t, 10*time.Second, func() error {
		b, err := os.ReadFile(p.Log)
		if err != nil || !strings.Contains(string(b), "ready") {
			return os.ErrNotExist
		}
		return nil
	})
	return p
}

func TestStop(t *testing.T) {
	tests := []struct {
		name      string
		trap      string // sh's answer to SIGTERM
		pause     bool   // SIGSTOP before Stop
		wantClean bool
	}{
		{"exits on SIGTERM", `trap "exit 0" TERM`, false, true},
		{"paused, exits on SIGTERM once resumed", `trap "exit 0" TERM`, true, true},
		{"ignores SIGTERM: killed", `trap "" TERM`, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startShell(t, tt.trap)
			if tt.pause {
				if err := p.Signal(syscall.SIGSTOP); err != nil {
					t.Fatal(err)
				}
			}
			if _, clean := p.Stop(2 * time.Second); clean != tt.wantClean {
				t.Errorf("Stop: exited by itself %v, want %v", clean, tt.wantClean)
			}
			if !p.Exited() {
				t.Errorf("still running after Stop")
			}
			if err := p.Signal(syscall.SIGTERM); err != nil {
				t.Errorf("signal after exit: %v, want nil", err)
			}
		})
	}
}

func TestWait(t *testing.T) {
	p := MustStart(t, "sh", "/bin/sh", "-c", "read line; exit 3") // waits on stdin, which is empty
	if err := p.Wait(5 * time.Second); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("Wait: %v, want exit status 3", err)
	}
	q := startShell(t, ":")
	if err := q.Wait(50 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "still running") {
		t.Errorf("Wait on a running process: %v, want still running", err)
	}
}

func TestFreePortsDistinct(t *testing.T) {
	ports := MustFreePorts(t, 20)
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] || p == 0 {
			t.Fatalf("ports %v: %d twice or zero", ports, p)
		}
		seen[p] = true
	}
}

func TestGet(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.Error(w, `{"error":"no such thing"}`, http.StatusNotFound)
			return
		}
		w.Write([]byte(`{"name":"ada"}`))
	}))
	defer srv.Close()
	c := srv.Client()

	var got struct{ Name string }
	if err := GetJSON(c, srv.URL+"/ok", &got); err != nil || got.Name != "ada" {
		t.Errorf("GetJSON /ok: %+v, %v", got, err)
	}
	err := GetJSON(c, srv.URL+"/missing", &got)
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "no such thing") {
		t.Errorf("GetJSON /missing: %v, want an error with the status and the body", err)
	}
	var e struct{ Error string }
	if code, err := Get(c, srv.URL+"/missing", &e); code != http.StatusNotFound || err != nil || e.Error != "no such thing" {
		t.Errorf("Get /missing: %d %+v %v, want 404 and the body decoded", code, e, err)
	}
}

// TestRegistry checks what the bench programs do to a registry server:
// pause it (reads fail), resume it, restart it (reads work again, through
// a new etcd client).
func TestRegistry(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Consul and etcd")
	}
	for _, name := range []string{"consul", "etcd"} {
		t.Run(name, func(t *testing.T) {
			r := MustStartRegistry(t, name)
			if r.Name != name || r.Version == "" || !strings.HasPrefix(r.Addr, "127.0.0.1:") {
				t.Errorf("started %+v %q", r.API, r.Version)
			}
			if ids, err := r.IDs("user"); err != nil || len(ids) != 0 {
				t.Fatalf("IDs: %v %v, want none", ids, err)
			}
			if err := r.Pause(); err != nil {
				t.Fatal(err)
			}
			if _, err := r.IDs("user"); err == nil {
				t.Errorf("IDs while paused: no error")
			}
			if err := r.Resume(); err != nil {
				t.Fatal(err)
			}
			if _, err := r.IDs("user"); err != nil {
				t.Errorf("IDs after resume: %v", err)
			}
			if err := r.Restart(); err != nil {
				t.Fatal(err)
			}
			if _, err := r.IDs("user"); err != nil {
				t.Errorf("IDs after restart: %v", err)
			}
		})
	}
}
