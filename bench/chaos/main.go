// Command chaos proves what the starter promises when instances stop, crash
// or fall sick and when the registry goes away: it starts a real Consul or
// etcd and user instances as processes on 127.0.0.1, drives a steady load
// through the client a service would use, runs each scenario of the table
// in scenarios.go against each registry, for the starter as shipped and
// for bench/plain's user service (plain go-micro, built into bin/plain/),
// and prints one table (report.go).
//
//	go build -o bin/plain/ ./bench/plain/...
//	go run ./bench/chaos -bin bin -registry etcd -scenario T2 -phase 3s
//
// Every scenario starts from a fresh registry and two user instances (one
// in T5). make chaos runs the whole set and writes the region of
// docs/resilience.md between its markers (readme.go).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/afex/hystrix-go/hystrix"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "sick-user" {
		if err := sickUser(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "sick-user:", err)
			os.Exit(1)
		}
		return
	}
	var (
		registries = flag.String("registry", "consul,etcd", "registries to run against")
		only       = flag.String("scenario", "all", "scenarios to run: all, or ids such as T1,T3a")
		modes      = flag.String("mode", "shipped,plain", "shipped (the starter), plain (bench/plain: go-micro's defaults); T8 and T9 run shipped on a registry cluster and on one server, or only one of them with cluster or single")
		rate       = flag.Int("rate", 500, "calls per second")
		phase      = flag.Duration("phase", 5*time.Second, "steady load before and after each event")
		outage     = flag.Duration("outage", 60*time.Second, "how long the registry is away in T3 and T9")
		cacheTTL   = flag.Duration("registry_cache_ttl", 0, "client cache TTL of the shipped services (0: their default, 1m)")
		bin        = flag.String("bin", "bin", "directory with user, consul and etcd")
		keep       = flag.Bool("keep", false, "keep each scenario's directory (the processes' logs) rather than remove it")
		out        = flag.String("out", "", "also write the report into this markdown file, between its "+beginMarker+" and "+endMarker+" lines")
	)
	flag.Parse()
	binDir, _ := filepath.Abs(*bin)
	if slices.Contains(strings.Split(*modes, ","), "plain") {
		if _, err := os.Stat(filepath.Join(binDir, "plain", "user")); err != nil {
			fmt.Fprintf(os.Stderr, "mode plain needs bench/plain's binaries: go build -o %s/ ./bench/plain/...\n", filepath.Join(*bin, "plain"))
			os.Exit(2)
		}
	}
	start := time.Now()
	var rows []row
	for _, reg := range strings.Split(*registries, ",") {
		for _, sc := range scenarios {
			if *only != "all" && !slices.Contains(strings.Split(*only, ","), sc.id) {
				continue
			}
			for _, mode := range scenarioModes(sc, strings.Split(*modes, ",")) {
				fmt.Fprintf(os.Stderr, "%s %s %s %s ...\n", time.Now().Format("15:04:05"), reg, sc.id, mode)
				r := runOne(binDir, reg, mode, sc, *rate, *phase, *outage, *cacheTTL, *keep)
				fmt.Fprintf(os.Stderr, "  %s\n", r.line())
				rows = append(rows, r)
			}
		}
	}
	took := time.Since(start)
	var base, ha []row
	for _, r := range rows {
		if r.sc.ha {
			ha = append(ha, r)
		} else {
			base = append(base, r)
		}
	}
	for _, part := range []struct {
		rows       []row
		begin, end string
	}{{base, beginMarker, endMarker}, {ha, haBeginMarker, haEndMarker}} {
		if len(part.rows) == 0 {
			continue
		}
		rep := report(part.rows, *rate, *phase, *outage, took)
		fmt.Print(rep)
		region := summary(part.rows) + "\n" + rep
		if part.begin == haBeginMarker {
			// Under the hand-written "## Registry clusters" heading.
			region = strings.ReplaceAll("\n"+region, "\n## ", "\n### ")[1:]
		}
		if *out != "" {
			if err := writeRegionBetween(*out, region, part.begin, part.end); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
	}
}

// scenarioModes is what sc runs in of modes: the registry-cluster
// scenarios run the shipped build on a cluster (shipped) and on one server
// (single), not plain go-micro; the others every mode asked for.
func scenarioModes(sc scenario, modes []string) []string {
	if !sc.ha {
		return modes
	}
	// shipped is both; cluster or single, one of them (the cluster's row
	// is named shipped).
	var ms []string
	if slices.Contains(modes, "shipped") || slices.Contains(modes, "cluster") {
		ms = append(ms, "shipped")
	}
	if slices.Contains(modes, "shipped") || slices.Contains(modes, "single") {
		ms = append(ms, "single")
	}
	return ms
}

func runOne(bin, reg, mode string, sc scenario, rate int, phase, outage, cacheTTL time.Duration, keep bool) row {
	r := row{registry: reg, mode: mode, sc: sc}
	// hystrix-go keeps circuits and their 10 s of counts per process: each
	// scenario starts with none, as a fresh caller process would.
	hystrix.Flush()
	dir, err := os.MkdirTemp("", "chaos-")
	if err != nil {
		r.err = err
		return r
	}
	if keep {
		fmt.Fprintln(os.Stderr, "  processes' logs kept in", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	var c *cluster
	if sc.ha && mode == "shipped" {
		c, err = newRegistryCluster(dir, bin, reg)
	} else {
		c, err = newCluster(dir, bin, reg, mode == "plain")
	}
	if err != nil {
		r.err = err
		return r
	}
	defer c.close()
	c.cacheTTL = cacheTTL
	for i := range sc.instances {
		p, id, _, err := c.startUser(sc.sick && i == sc.instances-1)
		if err != nil {
			r.err = fmt.Errorf("start user: %w (logs in %s)", err, dir)
			return r
		}
		c.users, c.ids = append(c.users, p), append(c.ids, id)
	}
	caller, err := newCaller(c)
	if err != nil {
		r.err = fmt.Errorf("client: %w", err)
		return r
	}
	e := env{c: c, caller: caller, rate: rate, phase: phase, outage: outage, shipped: mode != "plain",
		ttl: 10 * time.Second, every: 5 * time.Second}
	if mode == "plain" {
		e.ttl, e.every = 60*time.Second, 30*time.Second // as go-micro's service.Init sets them
	}
	r.err = sc.run(e, &r.outcome)
	return r
}
