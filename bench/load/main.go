// Command load measures gateway HTTP -> hello -> user on this machine, on
// loopback, against real Consul and etcd: requests per second and latency at
// full speed for several stacks side by side in one run, interleaved round
// by round so that load from elsewhere hits all of them alike:
//
//   - bare:  the same three hops as plain net/http processes with fixed
//     addresses (this binary, `load hop`), the practical ceiling;
//   - grpc:  the same three hops as bare grpc-go (bench/grpcbare: an HTTP
//     front, then gRPC with generated stubs and fixed addresses; `load
//     grpchop`), the ceiling for the transport the services use;
//   - plain: the same services written with plain go-micro (bench/plain,
//     built into <bin>/plain/: go build -o bin/plain/ ./bench/plain/...);
//   - ours:  our services as shipped: metrics on, traces exported over
//     OTLP/HTTP at the default --trace_sample_ratio (0.1);
//   - ours-nometrics, ours-notracing, ours-trace100: the same with
//     --metrics_address off, with no --otlp_endpoint, with every request
//     traced: what metrics and tracing cost (issue 15); ours-trace0: no
//     request sampled, so only the ids every log line carries (a -00
//     traceparent on every call) cost.
//
// Traces go to a receiver of their own (-otlp): `load sink`, which reads
// and discards them, or Jaeger (bin/jaeger). Each service stack is
// gateway, hello and two user instances with its own registry server.
// Besides req/s and latency it reports, per request and per hop, the CPU
// each process used (/proc/<pid>/stat) and the heap allocations it made
// (go_memstats_mallocs_total). It also measures the time from a new user
// instance's registration to its first call while load runs, the idle RSS
// of each service, and (with -soak) the RSS after a long moderate load.
//
//	go run ./bench/load -bin bin -registries consul,etcd -rounds 3 -duration 10s
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/example/micro-starter/bench/grpcbare"
	"github.com/example/micro-starter/internal/stack"
)

func main() {
	if len(os.Args) > 1 && slices.Contains([]string{"hop", "grpchop", "sink"}, os.Args[1]) {
		if err := subcommand(os.Args[1], os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, os.Args[1]+":", err)
			os.Exit(1)
		}
		return
	}
	o := options{out: os.Stdout, settle: 3 * time.Second}
	flag.StringVar(&o.bin, "bin", "bin", "directory with the user, hello and gateway binaries (bench/plain's in its plain/)")
	flag.StringVar(&o.registries, "registries", "consul,etcd", "registries to measure with")
	flag.StringVar(&o.stacks, "stacks", strings.Join(allStacks, ","), "stacks to measure at full speed")
	flag.StringVar(&o.otlp, "otlp", "sink", "where traced stacks send traces: sink (read and discarded by `load sink`) or jaeger (bin/jaeger on PATH)")
	flag.IntVar(&o.conns, "conns", 64, "concurrent keep-alive HTTP clients")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each full-speed run")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds; each runs every stack once, in rotating order")
	flag.BoolVar(&o.join, "join", true, "measure registration to first call of a new user instance under load")
	flag.DurationVar(&o.soak, "soak", 0, "after the rounds, load every stack at once at -rate for this long and report RSS each minute")
	flag.IntVar(&o.rate, "rate", 300, "requests per second during -soak, and with -url when given")
	flag.IntVar(&o.pace, "pace", 0, "drive every stack in the rounds at this many requests per second instead of full speed: CPU per request compared at one throughput (the variants' cost)")
	url := flag.String("url", "", "only drive the gateway already running at this URL (for profiling) and print the result")
	flag.Parse()
	if *url != "" {
		rate := 0 // full speed unless -rate is given
		flag.Visit(func(f *flag.Flag) {
			if f.Name == "rate" {
				rate = o.rate
			}
		})
		r := drive(*url, o.conns, o.duration, rate, nil)
		fmt.Printf("%s: %.0f req/s, p50 %.2f ms, p99 %.2f ms, %d errors %s\n", *url, r.rps, ms(r.p50), ms(r.p99), r.errors, r.firstErr)
		return
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

// subcommand runs one process of a bare chain, or the OTLP sink.
func subcommand(name string, args []string) error {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	role := fs.String("role", "", "gateway, hello or user")
	listen := fs.String("listen", "", "host:port")
	next := fs.String("next", "", "the next hop: http://host:port (hop), host:port (grpchop)")
	stats := fs.String("stats", "", "grpchop: host:port to serve GET /metrics (allocations) on")
	_ = fs.Parse(args)
	switch name {
	case "hop":
		return hop(*role, *listen, *next)
	case "sink":
		return sink(*listen)
	}
	if err := serveStats(*stats); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	return grpcbare.Serve(context.Background(), *role, ln, *next)
}

// allStacks is every stack, in the order tables list them.
var allStacks = []string{"bare", "grpc", "plain", "ours", "ours-nometrics", "ours-notracing", "ours-trace0", "ours-trace100"}

// oursArgs are the flags that make a variant of ours, given the receiver's
// OTLP/HTTP URL; traced: it exports traces.
func oursArgs(mode, otlp string) (args []string, traced bool, err error) {
	switch mode {
	case "ours", "ours-nometrics":
		args = []string{"--otlp_endpoint", otlp} // at the default sample ratio
		if mode == "ours-nometrics" {
			args = append(args, "--metrics_address", "off")
		}
		return args, true, nil
	case "ours-trace100":
		return []string{"--otlp_endpoint", otlp, "--trace_sample_ratio", "1"}, true, nil
	case "ours-trace0":
		return []string{"--otlp_endpoint", otlp, "--trace_sample_ratio", "0"}, true, nil
	case "ours-notracing":
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("unknown stack %q (want one of %s)", mode, strings.Join(allStacks, ", "))
}

type options struct {
	bin, registries, stacks, otlp string
	conns, rounds, rate, pace     int
	duration, soak                time.Duration
	join                          bool
	settle                        time.Duration // before idle RSS is read
	out                           io.Writer     // the report
}

// svcStack is one gateway URL and the processes behind it.
type svcStack struct {
	name  string
	url   string // http://host:port of the gateway
	reg   *stack.Registry
	procs []*stack.Proc
	args  []string // common service flags, to start more instances
	dir   string
	// metrics is each process's Prometheus page, where it has one.
	metrics map[*stack.Proc]string
	traced  bool // sends traces to the receiver
}

// stop stops every process at once (each of ours drains for 2 s), then
// the registry.
func (s *svcStack) stop() {
	var wg sync.WaitGroup
	for _, p := range s.procs {
		wg.Go(func() { p.Stop(10 * time.Second) })
	}
	wg.Wait()
	if s.reg != nil {
		s.reg.Stop()
	}
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func run(o options) error {
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "micro-starter-load-")
	if err != nil {
		return err
	}
	fmt.Fprintf(o.out, "# load: %s, %d conns, %d rounds of %v, logs in %s\n\n", time.Now().Format(time.RFC3339), o.conns, o.rounds, o.duration, dir)
	for _, regName := range strings.Split(o.registries, ",") {
		if err := runRegistry(o, bin, dir, regName); err != nil {
			return fmt.Errorf("%s: %w", regName, err)
		}
	}
	return nil
}

func runRegistry(o options, bin, dir, regName string) error {
	dir = filepath.Join(dir, regName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var stacks []*svcStack
	defer func() {
		// At once: each of ours drains for 2 s when stopped.
		var wg sync.WaitGroup
		for _, s := range stacks {
			wg.Go(s.stop)
		}
		wg.Wait()
	}()
	var rcv *receiver
	for _, name := range strings.Split(o.stacks, ",") {
		if _, traced, _ := oursArgs(name, ""); traced && rcv == nil {
			var err error
			if rcv, err = startReceiver(dir, o.otlp); err != nil {
				return fmt.Errorf("start the OTLP receiver: %w", err)
			}
			defer rcv.Stop(10 * time.Second)
		}
	}
	for _, name := range strings.Split(o.stacks, ",") {
		var s *svcStack
		var err error
		switch name {
		case "bare", "grpc":
			s, err = startBare(filepath.Join(dir, name), name)
		default:
			s, err = startServicesRetrying(filepath.Join(dir, name), bin, regName, name, rcv)
		}
		if s != nil {
			stacks = append(stacks, s)
		}
		if err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
	}
	var versions string
	for _, s := range stacks {
		if s.reg != nil {
			versions = s.reg.Name + " " + s.reg.Version
		}
	}
	fmt.Fprintf(o.out, "## %s (%s)\n\n", regName, versions)

	time.Sleep(o.settle) // idle RSS, once start-up is over
	fmt.Fprintf(o.out, "Idle RSS (MiB), %v after ready:\n", o.settle)
	fmt.Fprintln(o.out)
	fmt.Fprintln(o.out, "| stack | process | RSS MiB |\n| --- | --- | --- |")
	idle := map[*stack.Proc]int64{}
	for _, s := range stacks {
		for _, p := range s.procs {
			rss, err := p.RSS()
			if err != nil {
				return err
			}
			idle[p] = rss
			fmt.Fprintf(o.out, "| %s | %s | %.1f |\n", s.name, p.Name, float64(rss)/(1<<20))
		}
	}
	fmt.Fprintln(o.out)

	if rcv != nil {
		fmt.Fprintf(o.out, "Traces of the traced stacks go to %s (%s).\n\n", rcv.Name, rcv.url)
	}
	if o.rounds > 0 {
		fullSpeed(stacks, rcv, o)
	}

	for _, s := range stacks {
		// The variants of ours differ in instrumentation, not in how an
		// instance joins.
		if s.reg == nil || !o.join || strings.HasPrefix(s.name, "ours-") {
			continue
		}
		if err := joinUnderLoad(s, o); err != nil {
			fmt.Fprintf(o.out, "join (%s): %v\n\n", s.name, err)
		}
	}

	if o.soak > 0 {
		return soak(stacks, idle, o)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

func median(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return mid(v)
}

// mid is the median of v (the upper of the two middle values of an even
// count), 0 if v is empty.
func mid(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	return s[len(s)/2]
}

// startBare starts a bare chain: name "bare" (net/http hops) or "grpc"
// (bench/grpcbare), each process this binary.
func startBare(dir, name string) (*svcStack, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ports, err := stack.FreePorts(6)
	if err != nil {
		return nil, err
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	s := &svcStack{name: name, url: "http://" + addr(0), metrics: map[*stack.Proc]string{}}
	for _, h := range []struct {
		role string
		i    int // its address; i+3 its stats (grpc)
		next int // the next hop's address; -1: none
	}{{"user", 2, -1}, {"hello", 1, 2}, {"gateway", 0, 1}} {
		args := []string{"-role", h.role, "-listen", addr(h.i)}
		metrics := "http://" + addr(h.i) + "/metrics"
		if name == "grpc" {
			args = append([]string{"grpchop"}, append(args, "-stats", addr(h.i+3))...)
			if h.next >= 0 {
				args = append(args, "-next", addr(h.next))
			}
			metrics = "http://" + addr(h.i+3) + "/metrics"
		} else {
			args = append([]string{"hop"}, args...)
			if h.next >= 0 {
				args = append(args, "-next", "http://"+addr(h.next))
			}
		}
		p, err := stack.Start(dir, h.role, self, args...)
		if err != nil {
			return s, err
		}
		s.procs = append(s.procs, p)
		s.metrics[p] = metrics
	}
	return s, waitReady(s)
}

// receiver takes the traced stacks' traces: `load sink` or Jaeger.
type receiver struct {
	*stack.Proc
	url     string // OTLP/HTTP base URL
	stats   string // the sink's GET /stats; "" for Jaeger
	metrics string // its go_memstats_mallocs_total page
}

func startReceiver(dir, kind string) (*receiver, error) {
	switch kind {
	case "sink":
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		ports, err := stack.FreePorts(1)
		if err != nil {
			return nil, err
		}
		base := "http://127.0.0.1:" + strconv.Itoa(ports[0])
		p, err := stack.Start(dir, "otlp-sink", self, "sink", "-listen", "127.0.0.1:"+strconv.Itoa(ports[0]))
		if err != nil {
			return nil, err
		}
		r := &receiver{Proc: p, url: base, stats: base, metrics: base + "/metrics"}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if _, _, err = sinkStats(base); err == nil {
				return r, nil
			}
			if p.Exited() || time.Now().After(deadline) {
				p.Stop(time.Second)
				return nil, fmt.Errorf("sink not answering: %w", err)
			}
		}
	case "jaeger":
		j, err := stack.StartJaeger(dir)
		if err != nil {
			return nil, err
		}
		return &receiver{Proc: j.Proc, url: j.OTLP}, nil
	}
	return nil, fmt.Errorf("-otlp %q: want sink or jaeger", kind)
}

// startServicesRetrying is startServices, started again (3 tries) when a
// process lost one of its ports: they are free when picked and bound a
// moment later, when another test's process may have taken one.
func startServicesRetrying(dir, bin, regName, mode string, rcv *receiver) (*svcStack, error) {
	for try := 1; ; try++ {
		s, err := startServices(dir, bin, regName, mode, rcv)
		if err == nil || try == 3 || !strings.Contains(err.Error(), "address already in use") {
			return s, err
		}
		if s != nil {
			s.stop()
		}
	}
}

// startServices starts a registry server, two user instances, hello and
// gateway: ours from bin (mode "ours" or a variant, tracing to rcv), or
// (mode "plain") bench/plain's from bin/plain.
func startServices(dir, bin, regName, mode string, rcv *receiver) (*svcStack, error) {
	var variant []string
	var traced bool
	if mode != "plain" {
		var otlp string
		if rcv != nil {
			otlp = rcv.url
		}
		var err error
		if variant, traced, err = oursArgs(mode, otlp); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	svcBin := bin
	if mode == "plain" {
		svcBin = filepath.Join(bin, "plain")
		if _, err := os.Stat(filepath.Join(svcBin, "gateway")); err != nil {
			return nil, fmt.Errorf("bench/plain's binaries: go build -o %s/ ./bench/plain/...: %w", svcBin, err)
		}
	}
	reg, err := stack.StartRegistry(dir, regName, bin)
	if err != nil {
		return nil, err
	}
	s := &svcStack{name: mode, reg: reg, dir: dir, metrics: map[*stack.Proc]string{}, traced: traced}
	s.args = append([]string{"--registry", regName, "--registry_address", reg.Addr, "--server_address", "127.0.0.1:0"}, variant...)
	ports, err := stack.FreePorts(5)
	if err != nil {
		return s, err
	}
	gw := "127.0.0.1:" + strconv.Itoa(ports[0])
	s.url = "http://" + gw
	for i, p := range []struct{ name, svc string }{{"user-1", "user"}, {"user-2", "user"}, {"hello", "hello"}, {"gateway", "gateway"}} {
		args := s.args
		// A fixed metrics port, to read allocations from; none with
		// metrics off, and plain go-micro serves none.
		var metrics string
		if mode != "plain" && !slices.Contains(variant, "off") {
			metrics = "127.0.0.1:" + strconv.Itoa(ports[i+1])
			args = append(slices.Clone(args), "--metrics_address", metrics)
		}
		if p.svc == "gateway" {
			args = append(slices.Clone(args), "--http_address", gw)
			if mode != "plain" {
				// All load comes from 127.0.0.1, far beyond one client's
				// default rate; a limit no request reaches keeps the
				// limiter's cost in the figures.
				args = append(args, "--http_rate_limit", "1e9")
			}
		}
		pr, err := stack.Start(dir, p.name, filepath.Join(svcBin, p.svc), args...)
		if err != nil {
			return s, err
		}
		s.procs = append(s.procs, pr)
		if metrics != "" {
			s.metrics[pr] = "http://" + metrics + "/metrics"
		}
	}
	return s, waitReady(s)
}

// waitReady waits until the gateway answers a greeting of a known user.
func waitReady(s *svcStack) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		for _, p := range s.procs {
			if p.Exited() {
				return fmt.Errorf("%s/%s exited (log in its directory): %s", s.name, p.Name, p.Tail(3))
			}
		}
		rsp, err := http.Get(s.url + "/hello?user_id=ada")
		if err == nil {
			io.Copy(io.Discard, rsp.Body)
			rsp.Body.Close()
			if rsp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(rsp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after 60 s: %v", s.name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type result struct {
	n        int64 // requests answered 200
	rps      float64
	p50, p99 time.Duration
	errors   int64
	firstErr string
	// cpu is the services' CPU per request in this run (us), set by
	// fullSpeed; cpuOK false: not measured.
	cpu   float64
	cpuOK bool
}

// drive runs a closed loop of conns keep-alive clients against url for d
// (rate > 0: paced to about rate requests per second in all). seen, if
// set, is called with each response body.
func drive(base string, conns int, d time.Duration, rate int, seen func([]byte)) result {
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := base + "/hello?user_id=ada"
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var (
		mu       sync.Mutex
		lat      []time.Duration
		errs     atomic.Int64
		firstErr atomic.Value
		wg       sync.WaitGroup
	)
	var tick <-chan time.Time
	if rate > 0 {
		t := time.NewTicker(time.Second / time.Duration(rate))
		defer t.Stop()
		tick = t.C
	}
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, 1<<14)
			buf := new(bytes.Buffer)
			for ctx.Err() == nil {
				if tick != nil {
					select {
					case <-tick:
					case <-ctx.Done():
						continue
					}
				}
				t := time.Now()
				rsp, err := c.Get(url)
				if err == nil {
					buf.Reset()
					_, err = buf.ReadFrom(rsp.Body)
					rsp.Body.Close()
					if err == nil && rsp.StatusCode != http.StatusOK {
						err = fmt.Errorf("%s: %s", rsp.Status, bytes.TrimSpace(buf.Bytes()))
					}
				}
				if err != nil {
					if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
						break
					}
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				mine = append(mine, time.Since(t))
				if seen != nil {
					seen(buf.Bytes())
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	slices.Sort(lat)
	r := result{n: int64(len(lat)), rps: float64(len(lat)) / el.Seconds(), errors: errs.Load()}
	if e, ok := firstErr.Load().(string); ok {
		r.firstErr = "(" + e + ")"
	}
	if len(lat) > 0 {
		r.p50 = lat[len(lat)/2]
		r.p99 = lat[len(lat)*99/100]
	}
	return r
}

// joinUnderLoad starts a third user instance while the stack is under full
// load, and reports when the registry first lists it and when a response
// first names it.
func joinUnderLoad(s *svcStack, o options) error {
	conns := o.conns
	known, err := s.reg.IDs("user")
	if err != nil {
		return err
	}
	var firstCall sync.Map // instance id -> time.Time
	seen := func(body []byte) {
		i := bytes.Index(body, []byte(`"user":"`))
		if i < 0 {
			return
		}
		rest := body[i+8:]
		j := bytes.IndexByte(rest, '"')
		if j < 0 {
			return
		}
		id := string(rest[:j])
		if _, ok := firstCall.Load(id); !ok {
			firstCall.LoadOrStore(id, time.Now())
		}
	}
	done := make(chan result)
	before := loadavg()
	go func() { done <- drive(s.url, conns, 8*time.Second, 0, seen) }()
	time.Sleep(2 * time.Second)
	started := time.Now()
	p, err := stack.Start(s.dir, "user-3", filepath.Join(filepath.Dir(s.procs[0].Cmd.Path), "user"), s.args...)
	if err != nil {
		return err
	}
	s.procs = append(s.procs, p)
	var newID string
	var registered time.Time
	for deadline := time.Now().Add(5 * time.Second); newID == "" && time.Now().Before(deadline); {
		ids, err := s.reg.IDs("user")
		if err == nil {
			for _, id := range ids {
				if !slices.Contains(known, id) {
					newID, registered = id, time.Now()
				}
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	res := <-done
	if newID == "" {
		return fmt.Errorf("the new instance never appeared in the registry")
	}
	v, ok := firstCall.Load(newID)
	if !ok {
		return fmt.Errorf("%s registered %v after start but answered no call within the run", newID, registered.Sub(started).Round(time.Millisecond))
	}
	first := v.(time.Time)
	fmt.Fprintf(o.out, "Join (%s): new user instance registered %v after its process started; first call answered by it %v after registration (registry polled every 2 ms) — under full load: %.0f req/s, %d errors; load avg %s -> %s\n\n",
		s.name, registered.Sub(started).Round(time.Millisecond), first.Sub(registered).Round(time.Millisecond), res.rps, res.errors, before, loadavg())
	return nil
}

// fullSpeed drives each stack as fast as o.conns clients can (with
// o.pace, at o.pace requests per second), o.rounds times, rotating the
// order every round, and measures what each process used per request
// (usage.go).
func fullSpeed(stacks []*svcStack, rcv *receiver, o options) {
	speed := "Full speed"
	if o.pace > 0 {
		speed = fmt.Sprintf("Paced at %d req/s", o.pace)
	}
	fmt.Fprintf(o.out, "%s, %d keep-alive clients, GET /hello?user_id=ada, %v per run:\n\n", speed, o.conns, o.duration)
	fmt.Fprintln(o.out, "| round | stack | req/s | p50 ms | p99 ms | errors | services CPU us/req | load avg before | load avg after |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	all := map[string][]result{}
	used := map[string]*usage{}
	for _, s := range stacks {
		used[s.name] = newUsage()
	}
	for r := range o.rounds {
		for i := range stacks {
			s := stacks[(i+r)%len(stacks)]
			before := loadavg()
			start := s.snapshot(rcv)
			res := drive(s.url, o.conns, o.duration, o.pace, nil)
			end := s.snapshot(rcv)
			round := newUsage()
			round.add(start, end, res.n)
			used[s.name].add(start, end, res.n)
			res.cpu, res.cpuOK = round.services(round.cpuPer)
			all[s.name] = append(all[s.name], res)
			fmt.Fprintf(o.out, "| %d | %s | %.0f | %.2f | %.2f | %d %s | %s | %s | %s |\n", r+1, s.name, res.rps, ms(res.p50), ms(res.p99), res.errors, res.firstErr, cell2(res.cpu, res.cpuOK), before, loadavg())
		}
	}
	fmt.Fprintln(o.out)
	fmt.Fprintln(o.out, "| stack | median req/s | median p50 ms | median p99 ms | errors |\n| --- | --- | --- | --- | --- |")
	for _, s := range stacks {
		rs := all[s.name]
		var errs int64
		for _, r := range rs {
			errs += r.errors
		}
		fmt.Fprintf(o.out, "| %s | %.0f | %.2f | %.2f | %d |\n", s.name,
			median(rs, func(r result) float64 { return r.rps }),
			median(rs, func(r result) float64 { return ms(r.p50) }),
			median(rs, func(r result) float64 { return ms(r.p99) }), errs)
	}
	fmt.Fprintln(o.out)
	printUsage(o.out, stacks, used)
	printIO(o.out, stacks, used)
	printCost(o.out, stacks, all, used)
}

// soak loads every stack at once, each at o.rate with 8 clients, for
// o.soak, and prints each process's RSS every minute: growth that settles
// is a working set, growth that goes on is a leak. The goal is read from
// minute 10 on (-soak 60m: at most 5 % from minute 10 to 60).
// The bare net/http hops show what any Go process on this machine gains.
func soak(stacks []*svcStack, idle map[*stack.Proc]int64, o options) error {
	before := loadavg()
	results := make([]result, len(stacks))
	var wg sync.WaitGroup
	for i, s := range stacks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = drive(s.url, 8, o.soak, o.rate, nil)
		}()
	}
	samples := map[*stack.Proc][]int64{} // RSS at the end of each minute
	sample := func() error {
		for _, s := range stacks {
			for _, p := range s.procs {
				rss, err := p.RSS()
				if err != nil {
					return err
				}
				samples[p] = append(samples[p], rss)
			}
		}
		return nil
	}
	tick := time.NewTicker(time.Minute)
	for m := time.Minute; m <= o.soak; m += time.Minute {
		<-tick.C
		if err := sample(); err != nil {
			return err
		}
	}
	tick.Stop()
	wg.Wait()
	after := loadavg()
	mib := func(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }
	growth := func(from, to int64) string { return fmt.Sprintf("%+.1f %%", 100*float64(to-from)/float64(from)) }
	for i, s := range stacks {
		r := results[i]
		fmt.Fprintf(o.out, "Soak (%s): %v at %d req/s target, 8 clients: %.0f req/s, p50 %.2f ms, p99 %.2f ms, %d errors %s; load avg %s -> %s\n\n",
			s.name, o.soak, o.rate, r.rps, ms(r.p50), ms(r.p99), r.errors, r.firstErr, before, after)
		fmt.Fprintln(o.out, "| minute | "+procNames(s)+" |")
		fmt.Fprintln(o.out, "| --- |"+strings.Repeat(" --- |", len(s.procs)))
		row := func(label string, cell func(p *stack.Proc) string) {
			cells := []string{label}
			for _, p := range s.procs {
				cells = append(cells, cell(p))
			}
			fmt.Fprintln(o.out, "| "+strings.Join(cells, " | ")+" |")
		}
		row("idle", func(p *stack.Proc) string { return mib(idle[p]) })
		for m := range samples[s.procs[0]] {
			row(strconv.Itoa(m+1), func(p *stack.Proc) string { return mib(samples[p][m]) })
		}
		if ss := samples[s.procs[0]]; len(ss) > 1 {
			last := len(ss) - 1
			row("idle -> end", func(p *stack.Proc) string { return growth(idle[p], samples[p][last]) })
			row("minute 1 -> end", func(p *stack.Proc) string { return growth(samples[p][0], samples[p][last]) })
		}
		// The memory goal (docs/performance.md): growth from minute 10 to
		// the end of the soak, once the working set has settled.
		if ss := samples[s.procs[0]]; len(ss) > 10 {
			last := len(ss) - 1
			row("minute 10 -> end", func(p *stack.Proc) string { return growth(samples[p][9], samples[p][last]) })
		}
		fmt.Fprintln(o.out)
	}
	return nil
}

func procNames(s *svcStack) string {
	var n []string
	for _, p := range s.procs {
		n = append(n, p.Name+" MiB")
	}
	return strings.Join(n, " | ")
}
