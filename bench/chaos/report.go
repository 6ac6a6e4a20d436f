package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

type row struct {
	registry, mode string
	sc             scenario
	outcome
	err error
}

// met reports whether the row reached its target: it ran and recorded no miss.
func (r row) met() bool { return r.err == nil && len(r.failures) == 0 }

// shortfall says why a row did not meet its target.
func (r row) shortfall() string {
	if r.err != nil {
		return "error: " + r.err.Error()
	}
	return strings.Join(r.failures, "; ")
}

func (r row) verdict() string {
	switch {
	case r.met():
		return "met"
	case r.err != nil:
		return r.shortfall()
	default:
		return "MISSED: " + r.shortfall()
	}
}

func (r row) line() string {
	return fmt.Sprintf("calls %d, failed %d (%s), p50 %v, p99 %v; %s; %s", len(r.results), failed(r.results), kinds(r.results),
		percentile(r.results, 50).Round(10*time.Microsecond), percentile(r.results, 99).Round(10*time.Microsecond),
		strings.Join(r.notes, "; "), r.verdict())
}

func report(rows []row, rate int, phase, outage, took time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Measured\n\n")
	fmt.Fprintf(&b, "%s, %s. Load: user.UserService.Get at %d calls/s through the client a service uses; each event has %v of steady load before and after; registry outage %v. The run took %v.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), machine(), rate, phase, outage, took.Round(time.Second))
	fmt.Fprintf(&b, "Versions: %s.\n\n", versions())
	fmt.Fprintf(&b, "| registry | scenario | target | build | calls | failed | failed by kind | p50 | p99 | recovery | target met |\n")
	fmt.Fprintf(&b, "| --- | --- | --- | --- | ---: | ---: | --- | ---: | ---: | --- | --- |\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s %s | %s | %s | %d | %d | %s | %v | %v | %s | %s |\n", r.registry, r.sc.id, r.sc.name, r.sc.target, r.mode,
			len(r.results), failed(r.results), kinds(r.results),
			percentile(r.results, 50).Round(10*time.Microsecond), percentile(r.results, 99).Round(10*time.Microsecond),
			strings.Join(r.notes, "; "), r.verdict())
	}
	return b.String()
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	return fmt.Sprintf("%d cores (%s), %s/%s", runtime.NumCPU(), model, runtime.GOOS, runtime.GOARCH)
}

func versions() string {
	v := []string{runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			switch d.Path {
			case "go-micro.dev/v4", "github.com/go-micro/plugins/v4/server/grpc", "github.com/go-micro/plugins/v4/client/grpc",
				"github.com/go-micro/plugins/v4/registry/consul", "github.com/go-micro/plugins/v4/registry/etcd":
				v = append(v, d.Path+" "+d.Version)
			}
		}
	}
	for _, tool := range []string{"consul", "etcd"} {
		if out, err := exec.Command("bin/"+tool, "--version").Output(); err == nil {
			v = append(v, strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0])
		}
	}
	return strings.Join(v, ", ")
}
