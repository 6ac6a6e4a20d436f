package wrappers

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	grpcserver "github.com/go-micro/plugins/v4/server/grpc"
	"testing"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
	"google.golang.org/grpc/connectivity"

	"github.com/example/micro-starter/internal/poll"
)

// The base client's own cost per call, whole process (client and server):
// go-micro's gRPC client plugin took 314 allocations per call here (with
// -race; 304 without), ours 210 (203): the bound catches the work it does
// once per connection or client coming back into every call.
func TestCallAllocations(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	service := serviceName(t)
	mustServe(t, reg, service, "a")
	c := newBase(reg, DefaultConfig(), NewOutliers(outlierFailures, outlierCooldown))
	if allocs := allocsPerCall(t, c, service); allocs > maxAllocsPerCall {
		t.Errorf("%.0f allocations per call, want at most %d", allocs, maxAllocsPerCall)
	}
}

const maxAllocsPerCall = 240

// allocsPerCall is what a call of service through c allocates in this
// process (client and servers), once c is connected and its caches full.
func allocsPerCall(t *testing.T, c client.Client, service string) float64 {
	t.Helper()
	for range 20 {
		if _, err := call(context.Background(), c, service); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(500, func() {
		if _, err := call(context.Background(), c, service); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.0f allocations per call", allocs)
	return allocs
}

// One connection per instance carries every call to it, however many are
// in flight: with go-micro's plugin, 64 calls in flight here took 64
// connections, each with its own buffers and goroutines on both sides.
func TestOneConnectionPerInstance(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	service := serviceName(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingListener{Listener: ln}
	echo := mustServe(t, reg, service, "a", grpcserver.Listener(counted))
	echo.hang = make(chan struct{})
	c := newBase(reg, DefaultConfig(), NewOutliers(outlierFailures, outlierCooldown))

	const inFlight = 64
	var wg sync.WaitGroup
	errs := make(chan error, inFlight)
	for range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := call(context.Background(), c, service); err != nil {
				errs <- err
			}
		}()
	}
	err = poll.Until(5*time.Second, 5*time.Millisecond, func() error {
		if n := echo.calls.Load(); n < inFlight {
			return fmt.Errorf("%d calls in flight", n)
		}
		return nil
	})
	close(echo.hang)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err != nil {
		t.Fatalf("%d of %d calls in flight at once: %v", echo.calls.Load(), inFlight, err)
	}
	if n := counted.accepted.Load(); n != 1 {
		t.Errorf("%d calls in flight at once took %d connections, want 1", inFlight, n)
	}
}

type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// What the breaker adds to a call of hystrix-go's own work allocates
// nothing once the circuit is known: its name is not built per call, and a
// call that succeeded is not compared with hystrix-go's error values (each
// comparison boxed one).
func TestBreakerBookkeepingAllocatesNothing(t *testing.T) {
	b := Breaker(DefaultBreakerConfig(), time.Second)(nil).(*breaker)
	name := b.circuit("svc", "Echo.Call")
	if name != "svc.Echo.Call" {
		t.Fatalf("circuit %q, want svc.Echo.Call", name)
	}
	if allocs := testing.AllocsPerRun(100, func() {
		_ = breakerError(b.circuit("svc", "Echo.Call"), nil)
	}); allocs != 0 {
		t.Errorf("%.0f allocations per call, want 0", allocs)
	}
}

// A connection older than the pool TTL is replaced at the next call, however
// busy (a new handshake, with the certificates as they are now), and closed
// only once the calls still on it have ended.
func TestConnectionReplacedAfterTTL(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	service := serviceName(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingListener{Listener: ln}
	echo := mustServe(t, reg, service, "a", grpcserver.Listener(counted))
	const ttl = 200 * time.Millisecond
	c := newBase(reg, DefaultConfig(), NewOutliers(outlierFailures, outlierCooldown), client.PoolTTL(ttl)).(*rpcClient)
	only := func() *pooledConn {
		c.conns.mu.Lock()
		defer c.conns.mu.Unlock()
		for _, pc := range c.conns.conns {
			return pc
		}
		return nil
	}

	// Busy: a call every millisecond or so, on one connection for the TTL.
	if _, err := call(context.Background(), c, service); err != nil {
		t.Fatal(err)
	}
	first := only()
	waitFor(t, "a second connection", func() bool {
		if _, err := call(context.Background(), c, service); err != nil {
			t.Fatal(err)
		}
		return only() != first
	})
	if age := time.Since(first.created); age < ttl {
		t.Errorf("connection replaced after %v, before the TTL (%v)", age, ttl)
	}
	waitFor(t, "the replaced connection to close", func() bool { return first.cc.GetState() == connectivity.Shutdown })

	// A call still on a replaced connection finishes on it. The connection
	// is the one the call took, read once it is in flight: on a loaded
	// machine the one pooled before may pass its TTL first (seen in CI).
	echo.hang = make(chan struct{})
	errs := make(chan error, 2)
	calls, pooled := echo.calls.Load(), only()
	go func() { _, err := call(context.Background(), c, service); errs <- err }()
	waitFor(t, "a call in flight", func() bool { return echo.calls.Load() == calls+1 })
	second := only()
	want := 3 // first, second, and the one replacing second
	if second != pooled {
		want++ // pooled passed its TTL before the call took a connection
	}
	waitFor(t, "the TTL to pass", func() bool { return time.Since(second.created) > ttl })
	go func() { _, err := call(context.Background(), c, service); errs <- err }()
	waitFor(t, "a second call in flight", func() bool { return echo.calls.Load() == calls+2 })
	if only() == second {
		t.Fatal("the connection older than the TTL is still used")
	}
	if second.cc.GetState() == connectivity.Shutdown {
		t.Fatal("the replaced connection was closed with a call on it")
	}
	close(echo.hang)
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	waitFor(t, "the replaced connection to close", func() bool { return second.cc.GetState() == connectivity.Shutdown })
	if n := counted.accepted.Load(); n != int64(want) {
		t.Errorf("%d connections, want %d", n, want)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := poll.Until(5*time.Second, 2*time.Millisecond, func() error {
		if !cond() {
			return fmt.Errorf("waiting for %s", what)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A call sends no HTTP/2 PING and answers none: with grpc-go's dynamic
// flow-control windows, client and server each pinged the other to
// measure bandwidth at nearly every call when calls are sparse (4 PING
// frames per serial call here: 7 allocations and two writes more per
// call), both ways. The frames are counted on the server's connection.
func TestCallsSendNoPings(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	service := serviceName(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	counted := &pingListener{Listener: ln}
	mustServe(t, reg, service, "a", grpcserver.Listener(counted))
	c := newBase(reg, DefaultConfig(), NewOutliers(outlierFailures, outlierCooldown))
	for range 10 { // connect
		if _, err := call(context.Background(), c, service); err != nil {
			t.Fatal(err)
		}
	}
	const calls = 100
	before := counted.pings.Load()
	for range calls {
		if _, err := call(context.Background(), c, service); err != nil {
			t.Fatal(err)
		}
	}
	if n := counted.pings.Load() - before; n > 0 {
		t.Errorf("%d PING frames on the wire in %d calls, want none", n, calls)
	}
}

// pingListener counts the HTTP/2 PING frames its connections carry, both
// ways.
type pingListener struct {
	net.Listener
	pings atomic.Int64
}

func (l *pingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &pingConn{Conn: c, in: frameCounter{pings: &l.pings, skip: len(http2Preface)}, out: frameCounter{pings: &l.pings}}, nil
}

const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

type pingConn struct {
	net.Conn
	in, out frameCounter
}

func (c *pingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.add(p[:n])
	return n, err
}

func (c *pingConn) Write(p []byte) (int, error) {
	c.out.add(p)
	return c.Conn.Write(p)
}

// frameCounter splits one direction's bytes into HTTP/2 frames (a 9-byte
// header: length, type, flags, stream) and counts the PINGs (type 6).
type frameCounter struct {
	pings *atomic.Int64
	skip  int // preface bytes still to pass over

	mu  sync.Mutex
	buf []byte
}

func (f *frameCounter) add(p []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.skip > 0 {
		n := min(f.skip, len(p))
		f.skip -= n
		p = p[n:]
	}
	f.buf = append(f.buf, p...)
	for len(f.buf) >= 9 {
		size := int(f.buf[0])<<16 | int(f.buf[1])<<8 | int(f.buf[2])
		if len(f.buf) < 9+size {
			return
		}
		if f.buf[3] == 0x6 {
			f.pings.Add(1)
		}
		f.buf = f.buf[9+size:]
	}
}

// A call through NewClient, as services make it, from a caller without a
// deadline (the gateway's), whole process (client and server). Each call
// made a context for its request timeout besides its attempt's, a frame
// and a request for its encoded body and two buffers more per attempt to
// hand them to gRPC, its gRPC method name, a slice to add its instance
// order to its options, and one for gRPC to merge its call options with
// the connection's: 206 allocations per call here (214 with -race), 190
// (197) without. Client and server each put their write buffer back into
// gRPC's pool at every flush: 188 (194) with buffers of their own.
// go-micro's selector copied its cached list at every Select, and the
// balancer's instance order was a call option, applied to options that
// then escaped and sorted into a copy of the instances: 177 (183) with
// pkg/discovery's selector, which orders the instances itself. Each
// attempt had a context for its timeout, which gRPC wrapped in one of its
// own: 172 (178) with the timeout as the connection's method config; 169
// (175) with the server's frame per call (pkg/service/rpcserver); 168
// (174) with the request's options applied in place (NewRequest). The
// caller's context was marked as such at every call: 167 (173) with only
// the contexts the client derives marked; 166 with the request's body
// encoded into its request, and 165 with the answer encoded into the
// server's request. json.Unmarshal made its decoding state anew for every
// answer: 161 with a pooled decoder, 157 with the server's requests
// decoded on one too.
func TestClientAllocations(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	service := serviceName(t)
	mustServe(t, reg, service, "a")
	mustServe(t, reg, service, "b")
	c := mustClient(t, reg, DefaultConfig())
	if allocs := allocsPerCall(t, c, service); allocs > maxClientAllocs+raceAllocs {
		t.Errorf("%.0f allocations per call, want at most %d", allocs, maxClientAllocs+raceAllocs)
	}
}

const maxClientAllocs = 157

// A call ends at its request timeout however its attempts fall, also when
// the first attempt runs without the call's context (made only for a
// retry), and a request timeout shorter than the attempt timeout bounds
// the first attempt.
func TestCallEndsAtItsDeadline(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	service := serviceName(t)
	mustServeHung(t, reg, service, "a", "b")
	cfg := DefaultConfig()
	cfg.RequestTimeout, cfg.AttemptTimeout = 300*time.Millisecond, 200*time.Millisecond
	c := mustClient(t, reg, cfg)
	for _, tc := range []struct {
		name string
		opts []client.CallOption
		want time.Duration
	}{
		{"retry cut short", nil, 300 * time.Millisecond},
		{"request shorter than attempt", []client.CallOption{client.WithRequestTimeout(100 * time.Millisecond)}, 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			var rsp EchoResponse
			err := c.Call(context.Background(), c.NewRequest(service, "Echo.Call", &EchoRequest{Text: "hi"}, client.WithContentType("application/json")), &rsp, tc.opts...)
			took := time.Since(start)
			if code(err) != 408 {
				t.Errorf("error %v, want a 408", err)
			}
			if took < tc.want || took > tc.want+150*time.Millisecond {
				t.Errorf("call ended after %v, want %v", took, tc.want)
			}
		})
	}
}

// TestCallWrapperOptionIsTheCallsOwn: a call wrapper passed with one call
// (client.WithCallWrapper, as the gateway's status counter does) wraps that
// call alone, however many calls run at once. The call options are a copy
// of the client's, whose wrapper slice has room to spare: appending to it
// in place wrote every concurrent call's wrapper into the same slot (a data
// race; calls ran each other's wrapper).
func TestCallWrapperOptionIsTheCallsOwn(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	service := serviceName(t)
	mustServe(t, reg, service, "a")
	// Two more wrappers, as pkg/service adds (metrics, tracing): the
	// client's slice then holds 3 with room for 4.
	noop := func(next client.CallFunc) client.CallFunc { return next }
	c, err := NewClient(reg, DefaultConfig(), client.WrapCall(noop), client.WrapCall(noop))
	if err != nil {
		t.Fatal(err)
	}
	const workers, calls = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				var ran []int
				mine := client.WithCallWrapper(func(next client.CallFunc) client.CallFunc {
					return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
						ran = append(ran, w)
						return next(ctx, node, req, rsp, opts)
					}
				})
				var rsp EchoResponse
				req := c.NewRequest(service, "Echo.Call", &EchoRequest{Text: "hi"}, client.WithContentType("application/json"))
				if err := c.Call(context.Background(), req, &rsp, mine); err != nil {
					errs <- err
					return
				}
				if len(ran) != 1 {
					errs <- fmt.Errorf("worker %d call %d: its wrapper ran %d times, want once", w, i, len(ran))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A request is one allocation, besides the caller's own options: the
// gRPC plugin's applied its options to a copy of their own, which escaped.
func TestNewRequestAllocations(t *testing.T) {
	c := mustClient(t, registry.NewMemoryRegistry(), DefaultConfig())
	body := &EchoRequest{Text: "hi"}
	opts := []client.RequestOption{client.WithContentType("application/json")}
	var req client.Request
	allocs := testing.AllocsPerRun(100, func() {
		req = c.NewRequest("user", "Echo.Call", body, opts...)
	})
	if req.ContentType() != "application/json" || req.Service() != "user" || req.Endpoint() != "Echo.Call" || req.Body() != body {
		t.Errorf("request %s %s %s %v: not as asked", req.Service(), req.Endpoint(), req.ContentType(), req.Body())
	}
	if allocs > 1 {
		t.Errorf("%.0f allocations per request, want 1", allocs)
	}
}

// Each attempt's fault as the outlier record and the retry policy see it:
// an attempt the client's own request timeout cut short (the retry, here)
// is the network's, never the caller's, who is still waiting. The client
// marks the contexts it derives with the caller's (derivedFrom); unmarked,
// the retry's context ended, and the attempt counted as the caller's.
func TestAttemptCutByRequestTimeoutIsNotTheCallers(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	service := serviceName(t)
	mustServeHung(t, reg, service, "a", "b")
	var (
		mu     sync.Mutex
		faults []Fault
	)
	record := func(next client.CallFunc) client.CallFunc {
		return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
			err := next(ctx, node, req, rsp, opts)
			mu.Lock()
			faults = append(faults, Classify(ctx, err))
			mu.Unlock()
			return err
		}
	}
	cfg := DefaultConfig()
	cfg.RequestTimeout, cfg.AttemptTimeout = 300*time.Millisecond, 200*time.Millisecond
	c, err := NewClient(reg, cfg, client.WrapCall(record))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := call(context.Background(), c, service); code(err) != 408 {
		t.Fatalf("two hung instances: %v, want a 408", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(faults) != 2 || faults[0] != NetworkFault || faults[1] != NetworkFault {
		t.Errorf("attempts' faults %v, want two network faults", faults)
	}
}

// decodeJSON, through a pooled decoder, decodes and fails as
// json.Unmarshal does, one input after another on the same decoders.
func TestDecodeJSONAsUnmarshal(t *testing.T) {
	type answer struct {
		Text  string
		N     int
		Items []string
		Raw   json.RawMessage
	}
	long := `{"Text":"` + strings.Repeat("é", maxPooledJSON) + `"}`
	inputs := []string{
		`{"Text":"hi","N":3,"Items":["a","b"],"Raw":{"x":[1,2]}}`,
		"  \n{\"Text\":\"spaced\"}\t ",
		`{"Text":"<&>\u00e9"}`,
		`{"N":"not a number","Text":"after"}`,
		`{"Text":"hi"} trailing`,
		`{"Text":`,
		`[1,2]`,
		`null`,
		`{"Unknown":1,"Text":"known"}`,
		long,
		`{"Text":"after the long one"}`,
	}
	for range 3 { // the decoders are reused
		for _, in := range inputs {
			var got, want answer
			gotErr, wantErr := decodeJSON([]byte(in), &got), json.Unmarshal([]byte(in), &want)
			if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
				t.Errorf("%.40q: decoded %+v, %v; json.Unmarshal %+v, %v", in, got, gotErr, want, wantErr)
			}
		}
	}
	var notAPointer any = answer{}
	want := &json.InvalidUnmarshalError{Type: reflect.TypeOf(notAPointer)}
	if err := decodeJSON([]byte(`{}`), notAPointer); fmt.Sprint(err) != fmt.Sprint(want) {
		t.Errorf("into a value: %v, want %v", err, want)
	}
}

// mustServeHung starts instances of service that never answer until the
// test ends.
func mustServeHung(tb testing.TB, reg registry.Registry, service string, ids ...string) {
	tb.Helper()
	for _, id := range ids {
		e := mustServe(tb, reg, service, id)
		e.hang = make(chan struct{})
		tb.Cleanup(func() { close(e.hang) })
	}
}
