package main

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"
)

// point is what one hop had used at one moment: CPU and, where its
// processes serve it, the count of heap allocations.
type point struct {
	cpu        time.Duration
	mallocs    float64
	hasMallocs bool
	io         ioCount
}

// snap is a stack's hops at one moment, with the sink's byte count.
type snap struct {
	hops      map[string]point
	sinkBytes int64
}

const (
	hopReceiver = "otlp receiver"
	hopLoad     = "load generator"
)

// hopOrder is the order of the per-hop columns.
var hopOrder = []string{"gateway", "hello", "user", hopReceiver, hopLoad}

var instanceSuffix = regexp.MustCompile(`-\d+$`)

// snapshot reads every process of s (user instances summed as one hop),
// the receiver if s sends it traces, and this process, the load
// generator. A process that cannot be read is left out.
func (s *svcStack) snapshot(rcv *receiver) snap {
	sn := snap{hops: map[string]point{}}
	read := func(hop string, pid int, metrics string) {
		cpu, err := cpuTime(pid)
		if err != nil {
			return
		}
		pt, seen := sn.hops[hop]
		m, err := 0.0, error(nil)
		if metrics != "" {
			m, err = mallocs(metrics)
		}
		has := metrics != "" && err == nil && (!seen || pt.hasMallocs)
		n, _ := ioCounts(pid) // zero if unreadable: the columns then read 0
		sn.hops[hop] = point{cpu: pt.cpu + cpu, mallocs: pt.mallocs + m, hasMallocs: has,
			io: ioCount{written: pt.io.written + n.written, writes: pt.io.writes + n.writes}}
	}
	for _, p := range s.procs {
		read(instanceSuffix.ReplaceAllString(p.Name, ""), p.Cmd.Process.Pid, s.metrics[p])
	}
	if s.traced && rcv != nil {
		read(hopReceiver, rcv.Cmd.Process.Pid, rcv.metrics)
		if rcv.stats != "" {
			_, sn.sinkBytes, _ = sinkStats(rcv.stats)
		}
	}
	read(hopLoad, os.Getpid(), "")
	return sn
}

// usage adds up what each hop used over a stack's runs.
type usage struct {
	requests  int64
	cpu       map[string]time.Duration
	io        map[string]ioCount
	mallocs   map[string]float64
	noMallocs map[string]bool // some run lacked the figure
	sinkBytes int64
}

func newUsage() *usage {
	return &usage{cpu: map[string]time.Duration{}, io: map[string]ioCount{}, mallocs: map[string]float64{}, noMallocs: map[string]bool{}}
}

// add counts one run: from a to b, n requests answered.
func (u *usage) add(a, b snap, n int64) {
	u.requests += n
	for hop, pb := range b.hops {
		pa, ok := a.hops[hop]
		if !ok {
			continue
		}
		u.cpu[hop] += pb.cpu - pa.cpu
		d := u.io[hop]
		u.io[hop] = ioCount{written: d.written + pb.io.written - pa.io.written, writes: d.writes + pb.io.writes - pa.io.writes}
		if pa.hasMallocs && pb.hasMallocs {
			u.mallocs[hop] += pb.mallocs - pa.mallocs
		} else {
			u.noMallocs[hop] = true
		}
	}
	u.sinkBytes += b.sinkBytes - a.sinkBytes
}

// cpuPer is hop's CPU in microseconds per request; ok false: not measured.
func (u *usage) cpuPer(hop string) (float64, bool) {
	d, ok := u.cpu[hop]
	if !ok || u.requests == 0 {
		return 0, false
	}
	return float64(d.Microseconds()) / float64(u.requests), true
}

func (u *usage) allocsPer(hop string) (float64, bool) {
	m, ok := u.mallocs[hop]
	if !ok || u.noMallocs[hop] || u.requests == 0 {
		return 0, false
	}
	return m / float64(u.requests), true
}

// services sums a per-request figure over gateway, hello and user; ok
// false if any of them is missing.
func (u *usage) services(per func(string) (float64, bool)) (float64, bool) {
	var sum float64
	for _, hop := range hopOrder[:3] {
		v, ok := per(hop)
		if !ok {
			return 0, false
		}
		sum += v
	}
	return sum, true
}

func cell(v float64, ok bool, format string) string {
	if !ok {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

// printUsage tables each stack's CPU and allocations per request and hop.
func printUsage(w io.Writer, stacks []*svcStack, used map[string]*usage) {
	fmt.Fprintln(w, "Per request and per hop, over all rounds: CPU (utime+stime from /proc/<pid>/stat, us) and heap allocations (go_memstats_mallocs_total from the process's /metrics); user is both instances together; services is gateway + hello + user; - : not measured (plain go-micro and ours with metrics off serve no /metrics). RSS: the services' processes after the rounds.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| stack | requests | gateway CPU | hello CPU | user CPU | services CPU | OTLP receiver CPU | load generator CPU | gateway allocs | hello allocs | user allocs | services allocs | OTLP bytes | RSS MiB |")
	fmt.Fprintln(w, "| --- |"+strings.Repeat(" --- |", 13))
	for _, s := range stacks {
		u := used[s.name]
		cells := []string{s.name, fmt.Sprint(u.requests)}
		for _, hop := range hopOrder[:3] {
			cells = append(cells, cell2(u.cpuPer(hop)))
		}
		cells = append(cells, cell2(u.services(u.cpuPer)))
		for _, hop := range hopOrder[3:] {
			cells = append(cells, cell2(u.cpuPer(hop)))
		}
		for _, hop := range hopOrder[:3] {
			v, ok := u.allocsPer(hop)
			cells = append(cells, cell(v, ok, "%.0f"))
		}
		v, ok := u.services(u.allocsPer)
		cells = append(cells, cell(v, ok, "%.0f"))
		cells = append(cells, cell(float64(u.sinkBytes)/float64(max(u.requests, 1)), s.traced && u.sinkBytes > 0, "%.0f"))
		var rss int64
		for _, p := range s.procs {
			if b, err := p.RSS(); err == nil {
				rss += b
			}
		}
		cells = append(cells, fmt.Sprintf("%.0f", float64(rss)/(1<<20)))
		fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
	}
	fmt.Fprintln(w)
}

// printIO tables each stack's bytes written and write system calls per
// request and hop (/proc/<pid>/io wchar and syscw: sockets, logs and
// pipes alike): what the headers each call carries cost on the wire,
// whatever the machine's load.
func printIO(w io.Writer, stacks []*svcStack, used map[string]*usage) {
	fmt.Fprintln(w, "Per request and per hop, over all rounds: bytes written and write system calls (wchar and syscw from /proc/<pid>/io; user is both instances together):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| stack | gateway bytes | hello bytes | user bytes | gateway writes | hello writes | user writes |")
	fmt.Fprintln(w, "| --- |"+strings.Repeat(" --- |", 6))
	for _, s := range stacks {
		u := used[s.name]
		n := float64(max(u.requests, 1))
		cells := []string{s.name}
		for _, hop := range hopOrder[:3] {
			cells = append(cells, fmt.Sprintf("%.1f", float64(u.io[hop].written)/n))
		}
		for _, hop := range hopOrder[:3] {
			cells = append(cells, fmt.Sprintf("%.3f", float64(u.io[hop].writes)/n))
		}
		fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
	}
	fmt.Fprintln(w)
}

func cell2(v float64, ok bool) string { return cell(v, ok, "%.1f") }

// printCost tables the variants of ours against ours as shipped (issue
// 15): throughput as the ratio of medians and as the median of the ratios
// within each round (the stacks of a round run back to back, so load from
// elsewhere hits both alike), and the services' CPU per request, over all
// rounds and as the median of the per-round ratios.
func printCost(w io.Writer, stacks []*svcStack, all map[string][]result, used map[string]*usage) {
	shipped, ok := all["ours"]
	if !ok {
		return
	}
	var variants []string
	for _, s := range stacks {
		if strings.HasPrefix(s.name, "ours") {
			variants = append(variants, s.name)
		}
	}
	if len(variants) < 2 {
		return
	}
	rps := func(r result) float64 { return r.rps }
	base := median(shipped, rps)
	baseCPU, baseOK := used["ours"].services(used["ours"].cpuPer)
	fmt.Fprintln(w, "Cost of metrics and tracing: each variant of ours against ours as shipped (metrics on, traces exported at --trace_sample_ratio 0.1):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| variant | median req/s | vs shipped (medians) | vs shipped (median of per-round ratios) | per-round ratios | median p50 ms | median p99 ms | services CPU us/req | vs shipped | CPU vs shipped (median of per-round ratios) | per-round CPU ratios |")
	fmt.Fprintln(w, "| --- |"+strings.Repeat(" --- |", 10))
	for _, name := range variants {
		rs := all[name]
		ratios, each := roundRatios(rs, shipped, func(r result) (float64, bool) { return r.rps, true })
		cpuRatios, cpuEach := roundRatios(rs, shipped, func(r result) (float64, bool) { return r.cpu, r.cpuOK })
		cpu, cpuOK := used[name].services(used[name].cpuPer)
		fmt.Fprintf(w, "| %s | %.0f | %.3f | %s | %s | %.2f | %.2f | %s | %s | %s | %s |\n", name, median(rs, rps), median(rs, rps)/base,
			medianOf(ratios), each,
			median(rs, func(r result) float64 { return ms(r.p50) }), median(rs, func(r result) float64 { return ms(r.p99) }),
			cell2(cpu, cpuOK), cell(cpu/baseCPU, cpuOK && baseOK, "%.3f"), medianOf(cpuRatios), cpuEach)
	}
	fmt.Fprintln(w)
}

// roundRatios divides f of each round's run of a variant by f of the same
// round's run of ours as shipped: rounds where either is not measured are
// left out. each lists them.
func roundRatios(rs, shipped []result, f func(result) (float64, bool)) (ratios []float64, each string) {
	var cells []string
	for i := range min(len(rs), len(shipped)) {
		v, ok := f(rs[i])
		b, bok := f(shipped[i])
		if !ok || !bok || b == 0 {
			continue
		}
		ratios = append(ratios, v/b)
		cells = append(cells, fmt.Sprintf("%.3f", v/b))
	}
	return ratios, strings.Join(cells, " ")
}

func medianOf(v []float64) string {
	if len(v) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", mid(v))
}
