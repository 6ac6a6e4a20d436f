// Package stack starts what the tests and the bench programs run against,
// all on 127.0.0.1: Consul and etcd servers and service binaries. It
// stops, pauses and restarts them, reads what a registry lists through the
// registry's own API, and gets JSON over HTTP. Only tests and bench
// programs import it, never a service.
//
// Each StartX returns an error and leaves stopping to its caller (the bench
// programs). Its MustStartX counterpart takes a testing.TB: it fails the
// test on error, stops what it started when the test ends, and logs the
// end of the output of each process if the test failed.
package stack

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/example/micro-starter/internal/poll"
)

// Proc is a process started here, its output in the file Log.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Log  string
	done chan struct{}
	err  error // cmd.Wait's result, set before done is closed
}

// Start runs path with args, its environment HermeticEnv and its output
// in dir/name.log.
func Start(dir, name, path string, args ...string) (*Proc, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = HermeticEnv()
	return StartCmd(dir, name, cmd)
}

// StartCmd starts cmd as it is set up (a nil Env inherits this process's
// environment), with its output in dir/name.log.
func StartCmd(dir, name string, cmd *exec.Cmd) (*Proc, error) {
	p := &Proc{Name: name, Cmd: cmd, Log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	out, err := os.Create(p.Log)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child has its own copy
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// MustStart is Start for a test: the process is stopped when tb ends.
func MustStart(tb testing.TB, name, path string, args ...string) *Proc {
	tb.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = HermeticEnv()
	return MustStartCmd(tb, name, cmd)
}

// MustStartCmd is StartCmd for a test: the process is stopped when tb
// ends, and the end of its output logged if tb failed.
func MustStartCmd(tb testing.TB, name string, cmd *exec.Cmd) *Proc {
	tb.Helper()
	p, err := StartCmd(tb.TempDir(), name, cmd)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.stopForTest(tb) })
	return p
}

// stopForTest stops p as a test ends, and logs the end of its output if
// the test failed.
func (p *Proc) stopForTest(tb testing.TB) {
	if _, clean := p.Stop(stopWithin); !clean {
		tb.Logf("%s still running %v after SIGTERM: killed it", p.Name, stopWithin)
	}
	if tb.Failed() {
		tb.Logf("--- %s ---\n%s", p.Name, p.Tail(logLines))
	}
}

const (
	// stopWithin is how long a test's process has to stop on SIGTERM: the
	// services drain for 2 s by default.
	stopWithin = 10 * time.Second
	// logLines is how much of a process's output a failed test logs:
	// enough to see what it was doing, without pages of Consul start-up.
	logLines = 60
)

// HermeticEnv is this process's environment without the variables the
// services read as flags, so that a developer's shell settings cannot
// change what a test or benchmark starts.
func HermeticEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MICRO_") && !strings.HasPrefix(kv, "HTTP_ADDRESS=") {
			env = append(env, kv)
		}
	}
	return env
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is what exec.Cmd.Wait returned once the process has exited: nil for
// status 0.
func (p *Proc) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Signal sends sig to the process: SIGSTOP pauses it, SIGCONT resumes it,
// SIGKILL is a crash. A process that has exited already is no error.
func (p *Proc) Signal(sig syscall.Signal) error {
	if err := p.Cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s to %s: %w", sig, p.Name, err)
	}
	return nil
}

// Pause stops the process without ending it (SIGSTOP), and returns once
// every thread of it has stopped: a thread that is running when the signal
// comes could otherwise still answer a request after Pause returned.
func (p *Proc) Pause() error {
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	return poll.Until(5*time.Second, time.Millisecond, p.stopped)
}

// Resume lets a paused process go on (SIGCONT).
func (p *Proc) Resume() error { return p.Signal(syscall.SIGCONT) }

// stopped checks that every thread of the process is in state T (stopped),
// as /proc/<pid>/task/<tid>/stat reports it.
func (p *Proc) stopped() error {
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", p.Cmd.Process.Pid))
	if err != nil || len(stats) == 0 {
		return poll.Final(fmt.Errorf("%s: no threads in /proc: %v", p.Name, err))
	}
	for _, stat := range stats {
		b, err := os.ReadFile(stat)
		if err != nil {
			return err
		}
		// pid (comm) state ...: comm may hold spaces and parentheses.
		fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(fields) == 0 || fields[0] != "T" {
			return fmt.Errorf("%s: thread %s not stopped yet", p.Name, filepath.Base(filepath.Dir(stat)))
		}
	}
	return nil
}

// Wait waits up to within for the process to exit and returns what
// exec.Cmd.Wait returned (nil for status 0), or an error if it is still
// running.
func (p *Proc) Wait(within time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(within):
		return fmt.Errorf("%s still running after %v", p.Name, within)
	}
}

// Stop sends SIGTERM, then SIGKILL after limit, and waits for the exit. It
// returns how long the process took and whether it exited by itself.
func (p *Proc) Stop(limit time.Duration) (took time.Duration, clean bool) {
	if p == nil || p.Exited() {
		return 0, true
	}
	start := time.Now()
	_ = p.Signal(syscall.SIGCONT) // a paused process acts on nothing else
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return time.Since(start), true
	case <-time.After(limit):
		_ = p.Signal(syscall.SIGKILL)
		<-p.done
		return time.Since(start), false
	}
}

// Tail returns the last n lines of the process's output, with a header
// line saying how many there were if that is more.
func (p *Proc) Tail(n int) string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) <= n {
		return string(b)
	}
	return fmt.Sprintf("(last %d of %d lines)\n%s", n, len(lines), strings.Join(lines[len(lines)-n:], "\n"))
}

// MustLoggedAddr is the address= attribute of the first line p logged with
// the message msg: a listener's address, which the process chose on port 0
// and logs. A port picked free for it beforehand races with every process
// that binds port 0 until it listens (CI: the gateway's HTTP port, picked
// free, was taken meanwhile by hello's RPC server).
func (p *Proc) MustLoggedAddr(tb testing.TB, msg string) string {
	tb.Helper()
	attr := regexp.MustCompile(`\baddress[=":]+([^"\s,]+)`)
	var addr string
	poll.Eventually(tb, 5*time.Second, func() error {
		b, err := os.ReadFile(p.Log)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n") {
			// slog's text (quoted when it has to be) or JSON.
			if !strings.Contains(line, `msg="`+msg+`"`) && !strings.Contains(line, "msg="+msg+" ") && !strings.Contains(line, `"msg":"`+msg+`"`) {
				continue
			}
			if m := attr.FindStringSubmatch(line); m != nil {
				addr = m[1]
				return nil
			}
		}
		return fmt.Errorf("%s has not logged %q with an address yet", p.Name, msg)
	})
	return addr
}

// RSS is the resident set size of the process in bytes (VmRSS).
func (p *Proc) RSS() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for %s", p.Name)
}

// FreePorts returns n distinct ports that were free on 127.0.0.1 a moment
// ago, for TCP and UDP both (Consul's Serf ports use both).
func FreePorts(n int) ([]int, error) {
	var ports []int
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
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
	return ports, nil
}

// MustFreePorts is FreePorts for a test.
func MustFreePorts(tb testing.TB, n int) []int {
	tb.Helper()
	ports, err := FreePorts(n)
	if err != nil {
		tb.Fatal(err)
	}
	return ports
}

// MustFreeAddr is a free 127.0.0.1:port for a test.
func MustFreeAddr(tb testing.TB) string {
	tb.Helper()
	return "127.0.0.1:" + strconv.Itoa(MustFreePorts(tb, 1)[0])
}

// MustSignal is Signal for a test.
func (p *Proc) MustSignal(tb testing.TB, sig syscall.Signal) {
	tb.Helper()
	if err := p.Signal(sig); err != nil {
		tb.Fatal(err)
	}
}
