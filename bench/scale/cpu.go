package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat: USER_HZ,
// 100 on every Linux this runs on (sysconf needs cgo; the Go runtime
// does not expose it).
const clockTick = 10 * time.Millisecond

// registryCPU returns a function that reads the CPU time the processes
// pids have used so far, together.
func registryCPU(pids []int) func() time.Duration {
	return func() time.Duration {
		var sum time.Duration
		for _, pid := range pids {
			b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
			if err != nil {
				continue // exited: it adds nothing more
			}
			if s, err := parseStat(string(b)); err == nil {
				sum += s.cpu
			}
		}
		return sum
	}
}

// childNamed is the one child of this process whose command is name:
// stack.StartRegistry keeps the process it starts to itself.
func childNamed(name string) (int, error) {
	parent := os.Getpid()
	paths, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return 0, err
	}
	var found []int
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		s, err := parseStat(string(b))
		if err != nil || s.ppid != parent || s.comm != name {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		found = append(found, pid)
	}
	if len(found) != 1 {
		return 0, fmt.Errorf("%d children named %s, want one", len(found), name)
	}
	return found[0], nil
}

type stat struct {
	comm string
	ppid int
	cpu  time.Duration // utime + stime
}

// parseStat reads /proc/<pid>/stat: "pid (comm) state ppid ... utime
// stime ...", utime and stime the 14th and 15th fields. comm may hold
// spaces and parentheses, so the fields after it start at the last ")".
func parseStat(s string) (stat, error) {
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return stat{}, fmt.Errorf("stat %q: no (comm)", s)
	}
	f := strings.Fields(s[end+1:]) // f[0] is field 3, state
	if len(f) < 13 {
		return stat{}, fmt.Errorf("stat %q: %d fields after comm, want 13 or more", s, len(f))
	}
	ppid, err1 := strconv.Atoi(f[1])
	utime, err2 := strconv.ParseInt(f[11], 10, 64)
	stime, err3 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return stat{}, fmt.Errorf("stat %q: not numbers", s)
	}
	return stat{comm: s[open+1 : end], ppid: ppid, cpu: time.Duration(utime+stime) * clockTick}, nil
}
