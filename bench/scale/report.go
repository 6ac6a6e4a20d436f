package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// The results replace what lies between these lines of the -out file.
const (
	beginMarker = "<!-- scale:begin -->"
	endMarker   = "<!-- scale:end -->"
)

type report struct {
	c                  config
	start              time.Time
	loadStart, loadEnd string
	results            []result
}

func newReport(c config) *report {
	return &report{c: c, start: time.Now().UTC(), loadStart: loadAverage()}
}

func (r *report) add(res result) { r.results = append(r.results, res) }

func (r *report) finish() { r.loadEnd = loadAverage() }

func (r *report) markdown() string {
	var b strings.Builder
	c := r.c
	fmt.Fprintf(&b, "Measured by `make scale` (bench/scale) from %s UTC, %s, on %s (%d CPUs), load average (1 min) %s at the start and %s at the end; %s.\n",
		r.start.Format("2006-01-02 15:04"), roundDur(time.Since(r.start)), cpuModel(), runtime.NumCPU(), r.loadStart, r.loadEnd, runtime.Version())
	versions := map[string]string{}
	for _, res := range r.results {
		versions[res.registry] = res.version
	}
	var regs []string
	for _, name := range c.registries {
		switch name {
		case "consul":
			limit := "its default limit of 200 concurrent HTTP connections per client address"
			if c.consulConns > 0 {
				limit = fmt.Sprintf("http_max_conns_per_client raised to %d, as every client here is 127.0.0.1", c.consulConns)
			}
			regs = append(regs, "Consul "+versions[name]+" (one dev agent: server and the agent the instances register through, in one process; "+limit+")")
		case "etcd":
			regs = append(regs, "etcd "+versions[name]+" (one member)")
		}
	}
	clusters := ""
	if slices.Contains(c.topologies, "cluster") {
		clusters = "; and as a cluster (stack.StartCluster): three etcd members, every instance and caller given all three; " +
			"three Consul servers (raft_multiplier 1) and one client agent that every instance registers through and that checks them, each caller looking up and watching " +
			"through the servers, a different one first (through the one agent, 50 instances and 20 callers from one address would pass its default limit of 200 connections)"
	}
	fmt.Fprintf(&b, "Each registry on 127.0.0.1, as one process: %s%s. The instances are spread over %d services and re-register every %v "+
		"(with Consul, Consul also asks each one's /health every 2 s); %d callers each watch every service through go-micro's cache. "+
		"Lookups: %d from the registry and then %d from the cache per caller, all callers at once. Watch delay: from the start of a registration "+
		"(join) or deregistration (leave) until every caller's watch has delivered it, %d of each, one at a time. Registry CPU: utime+stime of its "+
		"processes together, at rest (instances refreshing, callers watching) over %v, as a share of one core; then per phase.\n\n",
		strings.Join(regs, "; "), clusters, c.services, registerInterval, c.watchers, c.lookups, c.cached, c.changes, c.steady)
	b.WriteString("| registry | processes | instances | lookup from registry p50 / p99 | stale answers | from cache p50 / p99 | watch delay, join: all callers p50 / p99 (max) | one caller p50 | leave: all callers p50 / p99 | missed deliveries | failed lookups, registry / cache | watch results at rest | registry CPU at rest | registry CPU per registration / lookup / join or leave |\n")
	b.WriteString("| --- | --- | ---: | --- | ---: | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | --- |\n")
	for _, res := range r.results {
		fmt.Fprintf(&b, "| %s | %s | %d | %s / %s | %d | %s / %s | %s / %s (%s) | %s | %s / %s | %d | %d / %d | %d | %.1f %% | %s / %s / %s |\n",
			res.registry, processes(res), res.instances,
			fmtDur(pct(res.uncached, 50)), fmtDur(pct(res.uncached, 99)), res.stale,
			fmtDur(pct(res.cached, 50)), fmtDur(pct(res.cached, 99)),
			fmtDur(pct(res.added, 50)), fmtDur(pct(res.added, 99)), fmtDur(pct(res.added, 100)),
			fmtDur(pct(res.addedEach, 50)),
			fmtDur(pct(res.removed, 50)), fmtDur(pct(res.removed, 99)),
			res.missed, res.lookupErrors, res.cachedErrors, res.restEvents, share(res.steadyCPU, res.steady),
			fmtDur(res.perRegistration()), fmtDur(res.perLookup()), fmtDur(res.perChange()))
	}
	b.WriteString("\nStale answers: lookups the registry had not answered within 1 s, answered from the last list (pkg/discovery.StaleOnError, as the services do); " +
		"their latency counts as 1 s. Failed lookups: from the registry, an error or a list short of an instance; from the cache, an error. Watch results at rest: " +
		"results the watches delivered while nothing was registered or removed, so checks that flapped (or watches that restarted), each told to every watcher. Registry CPU per operation: its CPU over the phase, less its rate at rest over the same time, divided by the operations; " +
		"a join or leave includes telling every caller. CPU is counted in ticks of 10 ms, so small figures are rough.\n")
	return b.String()
}

func processes(r result) string {
	switch {
	case r.members == 1:
		return "1"
	case r.registry == "consul":
		return fmt.Sprintf("%d servers + agent", r.members-1)
	default:
		return fmt.Sprintf("%d members", r.members)
	}
}

// writeSection replaces the text between the markers in path.
func writeSection(path, text string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	doc := string(b)
	i, j := strings.Index(doc, beginMarker), strings.Index(doc, endMarker)
	if i < 0 || j < i {
		return fmt.Errorf("%s: no %s ... %s section to replace", path, beginMarker, endMarker)
	}
	doc = doc[:i+len(beginMarker)] + "\n" + text + doc[j:]
	return os.WriteFile(path, []byte(doc), 0o644)
}

// pct is the q-th percentile (nearest rank) of ds; 0 if there are none.
func pct(ds []time.Duration, q int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := (q*len(s) + 99) / 100 // ceil(q/100 * n), 1-based
	return s[max(rank, 1)-1]
}

// share is cpu as a percentage of one core over wall.
func share(cpu, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return 100 * cpu.Seconds() / wall.Seconds()
}

// fmtDur prints a duration with 2-3 significant digits, in us or ms.
func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < 10*time.Microsecond:
		return fmt.Sprintf("%.1f us", float64(d)/float64(time.Microsecond))
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f us", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
}

func roundDur(d time.Duration) string { return d.Round(time.Second).String() }

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "an unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "an unknown CPU"
}
