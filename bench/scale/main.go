// Command scale measures how the registries behave as the number of
// registered instances and watching callers grows (docs/scaling.md): for
// Consul and etcd, each started on loopback by internal/stack (one server
// or member: a single process, so its CPU is the registry's), with up to
// 50 instances registered through pkg/discovery as the services register
// (re-registered every 5 s; with Consul an HTTP check of /health every 2 s)
// and 20 callers each watching every service through go-micro's cache, as
// the client chain does. Per size it measures:
//   - lookup latency from the registry (a cache miss) and from the cache;
//   - watch delay: from the start of a registration (or deregistration)
//     until every caller's watch has delivered it;
//   - the registry's CPU (utime+stime from /proc/<pid>/stat), at rest with
//     the instances refreshing and the callers watching, and per phase.
//
// make scale runs it at full size and writes the results into
// docs/scaling.md between its markers; its test runs it at a tiny size.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		var usage *usageError
		if errors.As(err, &usage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ error }

// config is one run of the program.
type config struct {
	bin        string // where consul and etcd are; empty: PATH
	registries []string
	topologies []string // single (one process) and cluster (stack.StartCluster)
	sizes      []int    // registered instances, one measurement per size
	services   int      // the instances are spread over this many services
	watchers   int      // callers, each watching every service
	lookups    int      // uncached lookups per caller
	cached     int      // cached lookups per caller
	changes    int      // registrations (and as many deregistrations) timed
	steady     time.Duration
	// Consul's concurrent HTTP connections per client address; 0: its default (200).
	consulConns int
	out         string // markdown file whose marked section is replaced; empty: stdout only
}

func parse(args []string, stdout io.Writer) (config, error) {
	c := config{}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stdout)
	registries, sizes, topologies := "consul,etcd", "10,25,50", "single,cluster"
	fs.StringVar(&c.bin, "bin", "", "folder of the consul and etcd binaries (make tools); empty: PATH")
	fs.StringVar(&registries, "registries", registries, "registries to measure, comma-separated")
	fs.StringVar(&topologies, "topologies", topologies, "single: one registry process; cluster: three etcd members, or three Consul servers and a client agent")
	fs.StringVar(&sizes, "instances", sizes, "numbers of registered instances to measure, comma-separated")
	fs.IntVar(&c.services, "services", 5, "services the instances are spread over")
	fs.IntVar(&c.watchers, "watchers", 20, "callers, each watching every service through go-micro's cache")
	fs.IntVar(&c.lookups, "lookups", 100, "lookups from the registry per caller")
	fs.IntVar(&c.cached, "cached", 2000, "lookups from the cache per caller")
	fs.IntVar(&c.changes, "changes", 10, "registrations and deregistrations timed per size")
	fs.DurationVar(&c.steady, "steady", 10*time.Second, "how long the registry's CPU is measured at rest (instances refreshing, callers watching)")
	fs.IntVar(&c.consulConns, "consul_conns", 4096, "Consul's limit of concurrent HTTP connections per client address (every client here is 127.0.0.1); 0: Consul's default, 200")
	fs.StringVar(&c.out, "out", "", "markdown file to write the results into, between "+beginMarker+" and "+endMarker)
	if err := fs.Parse(args[1:]); err != nil {
		return c, &usageError{err}
	}
	if fs.NArg() > 0 {
		return c, &usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	for _, r := range strings.Split(registries, ",") {
		if r != "consul" && r != "etcd" {
			return c, &usageError{fmt.Errorf("-registries: %q is not consul or etcd", r)}
		}
		c.registries = append(c.registries, r)
	}
	for _, t := range strings.Split(topologies, ",") {
		if t != "single" && t != "cluster" {
			return c, &usageError{fmt.Errorf("-topologies: %q is not single or cluster", t)}
		}
		c.topologies = append(c.topologies, t)
	}
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return c, &usageError{fmt.Errorf("-instances: %q is not a positive number", s)}
		}
		c.sizes = append(c.sizes, n)
	}
	for name, v := range map[string]int{"services": c.services, "watchers": c.watchers, "lookups": c.lookups, "cached": c.cached, "changes": c.changes} {
		if v < 1 {
			return c, &usageError{fmt.Errorf("-%s %d: want at least 1", name, v)}
		}
	}
	if c.consulConns < 0 {
		return c, &usageError{fmt.Errorf("-consul_conns %d: want 0 or more", c.consulConns)}
	}
	if c.steady <= 0 {
		return c, &usageError{fmt.Errorf("-steady %v: want a positive duration", c.steady)}
	}
	return c, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	c, err := parse(args, stdout)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(getenv("TMPDIR"), "scale")
	if err != nil {
		return fmt.Errorf("scale: %w", err)
	}
	defer os.RemoveAll(dir)

	rep := newReport(c)
	for _, name := range c.registries {
		for _, t := range c.topologies {
			for _, n := range c.sizes {
				fmt.Fprintf(stdout, "%s (%s), %d instances, %d watchers ...\n", name, t, n, c.watchers)
				res, err := measure(ctx, c, dir, name, t == "cluster", n)
				if err != nil {
					return fmt.Errorf("scale: %s (%s), %d instances: %w", name, t, n, err)
				}
				fmt.Fprintln(stdout, res.line())
				rep.add(res)
			}
		}
	}
	rep.finish()
	text := rep.markdown()
	fmt.Fprint(stdout, "\n"+text)
	if c.out == "" {
		return nil
	}
	if err := writeSection(c.out, text); err != nil {
		return fmt.Errorf("scale: %w", err)
	}
	fmt.Fprintf(stdout, "written into %s\n", c.out)
	return nil
}
