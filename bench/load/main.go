// Command load measures gateway HTTP -> hello -> user on this machine, on
// loopback, against real Consul and etcd: requests per second and latency at
// full speed for three stacks side by side in one run, interleaved round by
// round so that load from elsewhere hits all of them alike:
//
//   - bare:  the same three hops as plain net/http processes with fixed
//     addresses (this binary, `load hop`), the practical ceiling;
//   - plain: the same services written with plain go-micro (bench/plain,
//     built into <bin>/plain/: go build -o bin/plain/ ./bench/plain/...);
//   - ours:  our services as shipped (the wrapper chain).
//
// Each service stack is gateway, hello and two user instances with its own
// registry server. It also measures the time from a new user instance's
// registration to its first call while load runs, the idle RSS of each
// service, and (with -soak) the RSS after a long moderate load.
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
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/example/micro-starter/internal/stack"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "hop" {
		fs := flag.NewFlagSet("hop", flag.ExitOnError)
		role := fs.String("role", "", "gateway, hello or user")
		listen := fs.String("listen", "", "host:port")
		next := fs.String("next", "", "http://host:port of the next hop")
		_ = fs.Parse(os.Args[2:])
		if err := hop(*role, *listen, *next); err != nil {
			fmt.Fprintln(os.Stderr, "hop:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.StringVar(&o.bin, "bin", "bin", "directory with the user, hello and gateway binaries (bench/plain's in its plain/)")
	flag.StringVar(&o.registries, "registries", "consul,etcd", "registries to measure with")
	flag.StringVar(&o.stacks, "stacks", "bare,plain,ours", "stacks to measure at full speed")
	flag.IntVar(&o.conns, "conns", 64, "concurrent keep-alive HTTP clients")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each full-speed run")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds; each runs every stack once, in rotating order")
	flag.BoolVar(&o.join, "join", true, "measure registration to first call of a new user instance under load")
	flag.DurationVar(&o.soak, "soak", 0, "after the rounds, load every stack at once at -rate for this long and report RSS each minute")
	flag.IntVar(&o.rate, "rate", 300, "requests per second during -soak, and with -url when given")
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

type options struct {
	bin, registries, stacks string
	conns, rounds, rate     int
	duration, soak          time.Duration
	join                    bool
}

// svcStack is one gateway URL and the processes behind it.
type svcStack struct {
	name  string
	url   string // http://host:port of the gateway
	reg   *stack.Registry
	procs []*stack.Proc
	args  []string // common service flags, to start more instances
	dir   string
}

func (s *svcStack) stop() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		s.procs[i].Stop(10 * time.Second)
	}
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
	fmt.Printf("# load: %s, %d conns, %d rounds of %v, logs in %s\n\n", time.Now().Format(time.RFC3339), o.conns, o.rounds, o.duration, dir)
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
		for _, s := range stacks {
			s.stop()
		}
	}()
	for _, name := range strings.Split(o.stacks, ",") {
		var s *svcStack
		var err error
		if name == "bare" {
			s, err = startBare(filepath.Join(dir, name))
		} else {
			s, err = startServices(filepath.Join(dir, name), bin, regName, name)
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
	fmt.Printf("## %s (%s)\n\n", regName, versions)

	time.Sleep(3 * time.Second) // settle: idle RSS
	fmt.Println("Idle RSS (MiB), 3 s after ready:")
	fmt.Println()
	fmt.Println("| stack | process | RSS MiB |\n| --- | --- | --- |")
	idle := map[*stack.Proc]int64{}
	for _, s := range stacks {
		for _, p := range s.procs {
			rss, err := p.RSS()
			if err != nil {
				return err
			}
			idle[p] = rss
			fmt.Printf("| %s | %s | %.1f |\n", s.name, p.Name, float64(rss)/(1<<20))
		}
	}
	fmt.Println()

	if o.rounds > 0 {
		fullSpeed(stacks, o)
	}

	for _, s := range stacks {
		if s.reg == nil || !o.join {
			continue
		}
		if err := joinUnderLoad(s, o.conns); err != nil {
			fmt.Printf("join (%s): %v\n\n", s.name, err)
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
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	return v[len(v)/2]
}

func startBare(dir string) (*svcStack, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ports, err := stack.FreePorts(3)
	if err != nil {
		return nil, err
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	s := &svcStack{name: "bare", url: "http://" + addr(0)}
	for _, h := range []struct {
		role string
		i    int
		next string
	}{{"user", 2, ""}, {"hello", 1, "http://" + addr(2)}, {"gateway", 0, "http://" + addr(1)}} {
		p, err := stack.Start(dir, h.role, self, "hop", "-role", h.role, "-listen", addr(h.i), "-next", h.next)
		if err != nil {
			return s, err
		}
		s.procs = append(s.procs, p)
	}
	return s, waitReady(s)
}

// startServices starts a registry server, two user instances, hello and
// gateway: ours from bin, or (mode "plain") bench/plain's from bin/plain.
func startServices(dir, bin, regName, mode string) (*svcStack, error) {
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
	s := &svcStack{name: mode, reg: reg, dir: dir}
	s.args = []string{"--registry", regName, "--registry_address", reg.Addr, "--server_address", "127.0.0.1:0"}
	ports, err := stack.FreePorts(1)
	if err != nil {
		return s, err
	}
	gw := "127.0.0.1:" + strconv.Itoa(ports[0])
	s.url = "http://" + gw
	for _, p := range []struct{ name, svc string }{{"user-1", "user"}, {"user-2", "user"}, {"hello", "hello"}, {"gateway", "gateway"}} {
		args := s.args
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
	}
	return s, waitReady(s)
}

// waitReady waits until the gateway answers a greeting of a known user.
func waitReady(s *svcStack) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		for _, p := range s.procs {
			if p.Exited() {
				return fmt.Errorf("%s/%s exited (log in its directory)", s.name, p.Name)
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
	rps      float64
	p50, p99 time.Duration
	errors   int64
	firstErr string
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
	r := result{rps: float64(len(lat)) / el.Seconds(), errors: errs.Load()}
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
func joinUnderLoad(s *svcStack, conns int) error {
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
	fmt.Printf("Join (%s): new user instance registered %v after its process started; first call answered by it %v after registration (registry polled every 2 ms) — under full load: %.0f req/s, %d errors; load avg %s -> %s\n\n",
		s.name, registered.Sub(started).Round(time.Millisecond), first.Sub(registered).Round(time.Millisecond), res.rps, res.errors, before, loadavg())
	return nil
}

// fullSpeed drives each stack as fast as o.conns clients can, o.rounds
// times, rotating the order every round.
func fullSpeed(stacks []*svcStack, o options) {
	fmt.Printf("Full speed, %d keep-alive clients, GET /hello?user_id=ada, %v per run:\n\n", o.conns, o.duration)
	fmt.Println("| round | stack | req/s | p50 ms | p99 ms | errors | load avg before | load avg after |\n| --- | --- | --- | --- | --- | --- | --- | --- |")
	all := map[string][]result{}
	for r := range o.rounds {
		for i := range stacks {
			s := stacks[(i+r)%len(stacks)]
			before := loadavg()
			res := drive(s.url, o.conns, o.duration, 0, nil)
			all[s.name] = append(all[s.name], res)
			fmt.Printf("| %d | %s | %.0f | %.2f | %.2f | %d %s | %s | %s |\n", r+1, s.name, res.rps, ms(res.p50), ms(res.p99), res.errors, res.firstErr, before, loadavg())
		}
	}
	fmt.Println()
	fmt.Println("| stack | median req/s | median p50 ms | median p99 ms | errors |\n| --- | --- | --- | --- | --- |")
	for _, s := range stacks {
		rs := all[s.name]
		var errs int64
		for _, r := range rs {
			errs += r.errors
		}
		fmt.Printf("| %s | %.0f | %.2f | %.2f | %d |\n", s.name,
			median(rs, func(r result) float64 { return r.rps }),
			median(rs, func(r result) float64 { return ms(r.p50) }),
			median(rs, func(r result) float64 { return ms(r.p99) }), errs)
	}
	fmt.Println()
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
		fmt.Printf("Soak (%s): %v at %d req/s target, 8 clients: %.0f req/s, p50 %.2f ms, p99 %.2f ms, %d errors %s; load avg %s -> %s\n\n",
			s.name, o.soak, o.rate, r.rps, ms(r.p50), ms(r.p99), r.errors, r.firstErr, before, after)
		fmt.Println("| minute | " + procNames(s) + " |")
		fmt.Println("| --- |" + strings.Repeat(" --- |", len(s.procs)))
		row := func(label string, cell func(p *stack.Proc) string) {
			cells := []string{label}
			for _, p := range s.procs {
				cells = append(cells, cell(p))
			}
			fmt.Println("| " + strings.Join(cells, " | ") + " |")
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
		fmt.Println()
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
