package integration

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// binDir holds the service binaries TestMain built.
var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // every test skips itself; building would be wasted
	}
	os.Exit(buildAndRun(m))
}

// buildAndRun builds the services once for all tests, runs them, and
// removes the binaries.
func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "micro-starter-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./services/...")
	build.Dir = ".." // the module root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the services: %v\n%s", err, out)
		return 1
	}
	binDir = dir
	return m.Run()
}

func skipIfShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: starts Consul, etcd and the services")
	}
}

// process is a program started for one test and stopped when it ends.
type process struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr string // log file paths
	done           chan struct{}
	err            error // cmd.Wait's result, set before done is closed
}

// mustStart starts path with args, logging to files in tb.TempDir() that
// are printed if the test fails. The process is stopped in tb.Cleanup.
func mustStart(tb testing.TB, name, path string, args ...string) *process {
	tb.Helper()
	dir := tb.TempDir()
	p := &process{
		name:   name,
		cmd:    exec.Command(path, args...),
		stdout: filepath.Join(dir, name+".stdout"),
		stderr: filepath.Join(dir, name+".stderr"),
		done:   make(chan struct{}),
	}
	p.cmd.Env = hermeticEnv()
	p.cmd.Stdout = mustCreate(tb, p.stdout)
	p.cmd.Stderr = mustCreate(tb, p.stderr)
	err := p.cmd.Start()
	// The child has its own copies of the log files.
	p.cmd.Stdout.(*os.File).Close()
	p.cmd.Stderr.(*os.File).Close()
	if err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.stop(tb)
		if tb.Failed() {
			p.logOutput(tb)
		}
	})
	return p
}

func mustCreate(tb testing.TB, path string) *os.File {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// hermeticEnv is the test's environment without the variables the services
// read as flags, so a developer's shell settings cannot change the tests.
func hermeticEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MICRO_") && !strings.HasPrefix(kv, "HTTP_ADDRESS=") {
			env = append(env, kv)
		}
	}
	return env
}

func (p *process) signal(tb testing.TB, sig os.Signal) {
	tb.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		tb.Fatalf("signal %s: %v", p.name, err)
	}
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the process to exit and returns what exec.Cmd.Wait
// returned: nil for status 0.
func (p *process) wait(tb testing.TB, timeout time.Duration) error {
	tb.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		tb.Fatalf("%s still running %v after it was told to stop", p.name, timeout)
		return nil
	}
}

// stop asks the process to stop, as an orchestrator would, and kills it if
// it has not stopped after a few seconds.
func (p *process) stop(tb testing.TB) {
	if p.exited() {
		return
	}
	p.signal(tb, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		tb.Logf("%s still running 5s after SIGTERM: killing it", p.name)
		p.signal(tb, syscall.SIGKILL)
		<-p.done
	}
}

// logOutput logs the end of the process's output: enough to see what it
// was doing when the test failed, without pages of Consul start-up.
func (p *process) logOutput(tb testing.TB) {
	const maxLines = 60
	for _, path := range []string{p.stdout, p.stderr} {
		b, err := os.ReadFile(path)
		if err != nil || len(b) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		header := filepath.Base(path)
		if len(lines) > maxLines {
			header += fmt.Sprintf(" (last %d of %d lines)", maxLines, len(lines))
			lines = lines[len(lines)-maxLines:]
		}
		tb.Logf("--- %s ---\n%s", header, strings.Join(lines, "\n"))
	}
}

// freePorts returns n distinct ports that were free on 127.0.0.1 a moment
// ago, for TCP and UDP both (Consul's Serf ports use both).
func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	var ports []int
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		// Held open until all are chosen, so that no port is handed out twice.
		defer l.Close()
		u, err := net.ListenPacket("udp", l.Addr().String())
		if err != nil {
			continue // taken for UDP: try another
		}
		u.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func freePort(tb testing.TB) int {
	tb.Helper()
	return freePorts(tb, 1)[0]
}
