package wrappers

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	grpcclient "github.com/go-micro/plugins/v4/client/grpc"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/codec/bytes"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"
	pnet "go-micro.dev/v4/util/net"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	gmetadata "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"

	"github.com/example/micro-starter/pkg/tracing"
)

// rpcClient is the base client: go-micro's client.Client over grpc-go, with
// the wire format of go-micro's gRPC client plugin (client/grpc v1.2.1:
// method names, content types, metadata, errors), so go-micro's gRPC
// server answers it as it answers the plugin. Call is ours; requests,
// streams and publishing are the plugin's (micro).
//
// The plugin pays for every call what only changes per connection or per
// client: a TLS configuration and credentials built per call (even for
// plaintext), a goroutine per attempt and per call, a copy of the metadata
// per call and two per attempt, its codec bridge, and the call wrappers
// chained anew (BenchmarkLayers, docs/performance.md). Here those are built
// once; a call costs its context, its metadata and gRPC's own work.
//
// One gRPC connection per address carries every call to it (HTTP/2
// streams); as in the plugin's pool, one that has failed or is older than
// the pool TTL (client.PoolTTL, a minute) is replaced at the next call,
// and one unused for the TTL is closed.
type rpcClient struct {
	micro client.Client // go-micro's gRPC client, for everything but Call

	mu   sync.RWMutex
	opts client.Options
	// call is gcall wrapped in opts.CallOptions.CallWrappers, built when
	// they change rather than per call.
	call client.CallFunc

	conns   *connPool
	methods methodNames
	mdKey   any // go-micro's context key of the metadata (tracing.MetadataKey)
	// attemptTimeout bounds each attempt (withAttemptTimeout); 0: only
	// the call's deadline does.
	attemptTimeout atomic.Int64 // a time.Duration
}

// withAttemptTimeout is the client option that bounds each attempt of a
// call to d, so that a hung instance costs one attempt and not the whole
// request timeout (go-micro bounds only the call as a whole).
func withAttemptTimeout(d time.Duration) client.Option {
	return func(o *client.Options) {
		if o.Context == nil {
			o.Context = context.Background()
		}
		o.Context = context.WithValue(o.Context, attemptTimeoutKey{}, d)
	}
}

type attemptTimeoutKey struct{}

func attemptTimeoutOf(o client.Options) time.Duration {
	if o.Context == nil {
		return 0
	}
	d, _ := o.Context.Value(attemptTimeoutKey{}).(time.Duration)
	return d
}

// newRPCClient makes the base client; tlsConfig nil: plaintext.
func newRPCClient(tlsConfig *tls.Config, opts ...client.Option) *rpcClient {
	options := client.NewOptions()
	options.ContentType = "application/grpc+proto" // the plugin's default
	for _, o := range opts {
		o(&options)
	}
	creds := insecure.NewCredentials()
	if tlsConfig != nil {
		creds = credentials.NewTLS(tlsConfig)
		opts = append(opts[:len(opts):len(opts)], grpcclient.AuthTLS(tlsConfig))
	}
	r := &rpcClient{
		micro: grpcclient.NewClient(opts...),
		opts:  options,
		conns: newConnPool(creds, options.PoolTTL, attemptTimeoutOf(options)),
		mdKey: tracing.MetadataKey(),
	}
	r.attemptTimeout.Store(int64(attemptTimeoutOf(options)))
	r.call = r.wrap(options.CallOptions.CallWrappers)
	return r
}

func (r *rpcClient) wrap(ws []client.CallWrapper) client.CallFunc {
	f := r.attempt
	for i := len(ws) - 1; i >= 0; i-- {
		f = ws[i](f)
	}
	return f
}

func (r *rpcClient) Init(opts ...client.Option) error {
	r.mu.Lock()
	for _, o := range opts {
		o(&r.opts)
	}
	r.call = r.wrap(r.opts.CallOptions.CallWrappers)
	r.attemptTimeout.Store(int64(attemptTimeoutOf(r.opts)))
	r.conns.set(r.opts.PoolTTL, attemptTimeoutOf(r.opts))
	r.mu.Unlock()
	return r.micro.Init(opts...)
}

func (r *rpcClient) Options() client.Options {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.opts
}

func (r *rpcClient) NewMessage(topic string, msg interface{}, opts ...client.MessageOption) client.Message {
	return r.micro.NewMessage(topic, msg, opts...)
}

func (r *rpcClient) NewRequest(service, endpoint string, req interface{}, opts ...client.RequestOption) client.Request {
	return r.micro.NewRequest(service, endpoint, req, opts...)
}

func (r *rpcClient) Stream(ctx context.Context, req client.Request, opts ...client.CallOption) (client.Stream, error) {
	return r.micro.Stream(ctx, req, opts...)
}

func (r *rpcClient) Publish(ctx context.Context, msg client.Message, opts ...client.PublishOption) error {
	return r.micro.Publish(ctx, msg, opts...)
}

func (r *rpcClient) String() string { return "grpc" }

// Close closes every connection.
func (r *rpcClient) Close() { r.conns.closeAll() }

// Call is the plugin's Call (selection, request timeout, call wrappers,
// backoff, retries, Selector.Mark), with the attempts made one after
// another in the caller's goroutine: gRPC ends an attempt when its
// context ends, so no goroutine has to wait for it.
func (r *rpcClient) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	if req == nil {
		return merrors.InternalServerError(clientID, "req is nil")
	} else if rsp == nil {
		return merrors.InternalServerError(clientID, "rsp is nil")
	}
	r.mu.RLock()
	callOpts, call, sel := r.opts.CallOptions, r.call, r.opts.Selector
	r.mu.RUnlock()
	// Clipped, the client's wrappers cannot be appended to in place: a
	// call's own wrapper (client.WithCallWrapper) goes into a new slice,
	// not into the spare room every concurrent call would write to.
	callOpts.CallWrappers = slices.Clip(callOpts.CallWrappers)
	if len(opts) > 0 {
		base := callOpts.CallWrappers
		applyCallOptions(&callOpts, opts)
		if !sameWrappers(base, callOpts.CallWrappers) { // a call option added some
			call = r.wrap(callOpts.CallWrappers)
		}
	}
	next, err := r.next(sel, req, callOpts)
	if err != nil {
		return err
	}
	// The call's deadline. Its context is made only when an attempt could
	// outlast it: when the attempt timeout is shorter than the request
	// timeout, the first attempt ends first (attempt), and most calls
	// make no other; a retry makes it then.
	deadline, has := ctx.Deadline()
	lazy := false
	caller := ctx
	if has {
		callOpts.RequestTimeout = time.Until(deadline)
	} else {
		deadline = time.Now().Add(callOpts.RequestTimeout)
		at := time.Duration(r.attemptTimeout.Load())
		lazy = at > 0 && at <= callOpts.RequestTimeout
		if !lazy {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline)
			defer cancel()
			ctx = derivedFrom(ctx, caller)
		}
	}
	if ctx.Err() != nil {
		return merrors.New(clientID, ctx.Err().Error(), 408)
	}
	var last error
	for i := 0; i <= callOpts.Retries; i++ {
		if lazy && i == 1 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline)
			defer cancel()
			ctx = derivedFrom(ctx, caller)
		}
		callOpts.RequestTimeout = time.Until(deadline)
		node, err := pick(ctx, i, next, req, callOpts.Backoff)
		if err == nil {
			err = call(ctx, node, req, rsp, callOpts)
			sel.Mark(req.Service(), node, err)
			if err == nil {
				return nil
			}
		}
		if err := ctx.Err(); err != nil {
			return merrors.New(clientID, err.Error(), 408)
		}
		if lazy && i == 0 && !time.Now().Before(deadline) { // as the call's context would have ended
			return merrors.New(clientID, context.DeadlineExceeded.Error(), 408)
		}
		retry, rerr := callOpts.Retry(ctx, req, i, err)
		if rerr != nil {
			return rerr
		}
		if !retry {
			return err
		}
		last = err
	}
	return last
}

// applyCallOptions applies opts to *o through a copy: apart from Call, so
// that a call without options keeps its options on the stack (an option
// is a func, whose argument escapes), and by pointer, so that Call's frame,
// on the stack below every call in flight, holds no copy in and out.
func applyCallOptions(o *client.CallOptions, opts []client.CallOption) {
	c := *o
	for _, opt := range opts {
		opt(&c)
	}
	*o = c
}

// pick is the node for attempt i, after the attempt's back-off. It
// returns before the attempt is made, so that its frame is not on the
// stack below the call in flight (the stack a call needs grows with every
// frame under it: docs/performance.md).
func pick(ctx context.Context, i int, next selector.Next, req client.Request, backoff client.BackoffFunc) (*registry.Node, error) {
	wait, err := backoff(ctx, req, i)
	if err != nil {
		return nil, merrors.InternalServerError(clientID, "%s", err.Error())
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, merrors.New(clientID, ctx.Err().Error(), 408)
		case <-t.C:
		}
	}
	node, err := next()
	if err != nil {
		if err == selector.ErrNotFound {
			return nil, merrors.InternalServerError(clientID, "service %s: %s", req.Service(), err.Error())
		}
		return nil, merrors.InternalServerError(clientID, "error selecting %s node: %s", req.Service(), err.Error())
	}
	return node, nil
}

func (r *rpcClient) next(sel selector.Selector, req client.Request, opts client.CallOptions) (selector.Next, error) {
	service, address, _ := pnet.Proxy(req.Service(), opts.Address)
	if len(address) > 0 {
		return func() (*registry.Node, error) { return &registry.Node{Address: address[0]}, nil }, nil
	}
	next, err := sel.Select(service, opts.SelectOptions...)
	if err != nil {
		if err == selector.ErrNotFound {
			return nil, merrors.InternalServerError(clientID, "service %s: %s", service, err.Error())
		}
		return nil, merrors.InternalServerError(clientID, "error selecting %s node: %s", service, err.Error())
	}
	return next, nil
}

// attempt is one call on one node: the innermost CallFunc. It ends at the
// attempt timeout, or earlier when the call's deadline (opts.RequestTimeout
// from now) or the context's comes first; a context that already ends in
// time is used as it is: a service calling on inside a call it serves gets
// its caller's shorter deadline without a context and a timer of its own.
//
// The attempt timeout itself is the connection's (connPool.get: gRPC's
// method config), which gRPC applies to the context it makes for every
// call anyway: a context of our own, which gRPC would then wrap in one of
// its own, is made only for a shorter bound.
func (r *rpcClient) attempt(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
	c, ok := codecs[req.ContentType()]
	if !ok {
		return merrors.InternalServerError(clientID, "unsupported Content-Type: %s", req.ContentType())
	}
	pc, err := r.conns.get(node.Address)
	if err != nil {
		return merrors.InternalServerError(clientID, "Error sending request: %v", err)
	}
	defer pc.release()
	var end time.Time // when the connection's timeout ends the attempt
	if d := time.Duration(r.attemptTimeout.Load()); d > 0 {
		if opts.RequestTimeout > 0 && opts.RequestTimeout < d {
			d = opts.RequestTimeout
		}
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > d {
			if d == pc.timeout {
				end = time.Now().Add(d)
			} else {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, d)
				defer cancel()
			}
		}
	}
	if !ok {
		return merrors.InternalServerError(clientID, "unsupported Content-Type: %s", req.ContentType())
	}
	ctx = r.outgoing(ctx)
	err = pc.cc.Invoke(ctx, r.methods.of(req.Service(), req.Endpoint()), body(req), rsp, c.callOptions...)
	if err == nil {
		return nil
	}
	return attemptError(ctx, err, end)
}

// outgoing is ctx with its go-micro metadata as gRPC headers, one value per
// key in lower case, as the plugin sends it: one slice, which gRPC reads as
// it writes the headers. Read in place: a handler's context holds the
// metadata it was called with, in gRPC's lower-case keys, and
// metadata.FromContext would copy it and re-case every key for ToLower to
// undo (two allocations per key per call). Apart from attempt, as
// attemptError is, so that attempt's frame, on the stack while the call is
// in flight, holds none of their locals.
func (r *rpcClient) outgoing(ctx context.Context) context.Context {
	md, _ := ctx.Value(r.mdKey).(metadata.Metadata)
	if len(md) == 0 {
		return ctx
	}
	kv := make([]string, 0, 2*len(md))
next:
	for k, v := range md {
		k = strings.ToLower(k)
		for i := 0; i < len(kv); i += 2 {
			if kv[i] == k {
				kv[i+1] = v
				continue next
			}
		}
		kv = append(kv, k, v)
	}
	return gmetadata.AppendToOutgoingContext(ctx, kv...)
}

// attemptError is the error of an attempt that failed, as the plugin
// answers it; end is when the connection's timeout ended the attempt
// (zero: no such timeout).
func attemptError(ctx context.Context, err error, end time.Time) error {
	if ctx.Err() != nil { // as the plugin answers an attempt its context ended
		return merrors.Timeout(clientID, "%v", ctx.Err())
	}
	if !end.IsZero() && status.Code(err) == codes.DeadlineExceeded && !time.Now().Before(end) {
		// The connection's timeout, as if it had been the context's.
		return merrors.Timeout(clientID, "%v", context.DeadlineExceeded)
	}
	return microError(err)
}

// sameWrappers reports whether a and b are the same slice.
func sameWrappers(a, b []client.CallWrapper) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// methodNames holds the gRPC method of each endpoint called, so that a
// call builds no name. Bounded: emptied when it holds maxMethodNames.
type methodNames struct {
	m sync.Map // [2]string{service, endpoint} -> string
	n atomic.Int64
}

const maxMethodNames = 1024

func (m *methodNames) of(service, endpoint string) string {
	key := [2]string{service, endpoint}
	if s, ok := m.m.Load(key); ok {
		return s.(string)
	}
	s := methodToGRPC(service, endpoint)
	if m.n.Add(1) > maxMethodNames {
		m.m.Clear()
		m.n.Store(1)
	}
	m.m.Store(key, s)
	return s
}

// methodToGRPC is the plugin's gRPC method for an endpoint: "Foo.Bar" of
// service s is "/s.Foo/Bar".
func methodToGRPC(service, endpoint string) string {
	if len(endpoint) == 0 || endpoint[0] == '/' {
		return endpoint
	}
	i := strings.IndexByte(endpoint, '.')
	if i < 0 || strings.IndexByte(endpoint[i+1:], '.') >= 0 {
		return endpoint
	}
	if service == "" {
		return "/" + endpoint[:i] + "/" + endpoint[i+1:]
	}
	return "/" + service + "." + endpoint[:i] + "/" + endpoint[i+1:]
}

// microError is the plugin's: a go-micro error a server sent as a gRPC
// status message is that error; any other status becomes a go-micro error
// of the client with the matching HTTP code.
func microError(err error) error {
	if err == nil {
		return nil
	}
	if e, ok := err.(*merrors.Error); ok {
		return e
	}
	s, ok := status.FromError(err)
	if !ok {
		return err
	}
	if details := s.Details(); len(details) > 0 {
		if e, ok := details[0].(error); ok {
			return microError(e)
		}
	}
	if e := merrors.Parse(s.Message()); e.Code > 0 {
		return e
	}
	return merrors.New(clientID, s.Message(), httpCode(s.Code()))
}

func httpCode(c codes.Code) int32 {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.DeadlineExceeded:
		return http.StatusRequestTimeout
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.FailedPrecondition:
		return http.StatusPreconditionFailed
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// connPool holds one gRPC connection per address.
type connPool struct {
	creds credentials.TransportCredentials

	mu        sync.Mutex
	ttl       time.Duration
	timeout   time.Duration // of each call, by gRPC's method config; 0: none
	conns     map[string]*pooledConn
	lastSweep time.Time
}

type pooledConn struct {
	cc       *grpc.ClientConn
	timeout  time.Duration // gRPC bounds every call on cc to this; 0: none
	created  time.Time
	inFlight atomic.Int64
	lastUsed atomic.Int64 // unix nanoseconds
	retired  atomic.Bool  // out of the pool: closed once no call is on it
	close    sync.Once
}

// The plugin's message size bounds (4 MiB each way).
const maxMsgSize = 4 << 20

// Flow-control windows (bytes) of a call and of a connection: a call's
// holds a LAN's bandwidth-delay product (10 Gb/s over 0.5 ms: 625 KB),
// which grpc-go's dynamic windows would grow to.
const (
	streamWindow = 1 << 20
	connWindow   = 4 << 20
)

func newConnPool(creds credentials.TransportCredentials, ttl, timeout time.Duration) *connPool {
	return &connPool{creds: creds, ttl: ttl, timeout: timeout, conns: map[string]*pooledConn{}, lastSweep: time.Now()}
}

// set changes the TTL and the call timeout; connections made with another
// timeout are replaced, so that none bounds a call to the old one.
func (p *connPool) set(ttl, timeout time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ttl = ttl
	if timeout != p.timeout {
		p.timeout = timeout
		for addr, c := range p.conns {
			delete(p.conns, addr)
			c.retire()
		}
	}
}

// timeoutConfig is gRPC's service config that bounds every call to d
// (the method config whose name is empty applies to all methods).
func timeoutConfig(d time.Duration) string {
	return fmt.Sprintf(`{"methodConfig":[{"name":[{}],"timeout":"%d.%09ds"}]}`, d/time.Second, d%time.Second)
}

// get returns the connection to addr; call release when the call on it
// has ended. A connection is replaced when it has failed (transient
// failure, shut down: its calls fail fast, and gRPC would wait out a
// reconnection backoff before trying again) and once it is older than the
// TTL, as the plugin's pool replaces its connections: a new one makes a new
// TLS handshake, with the certificates as they are now. A replaced
// connection is closed once the calls on it have ended.
func (p *connPool) get(addr string) (*pooledConn, error) {
	now := time.Now()
	p.mu.Lock()
	if p.ttl > 0 && now.Sub(p.lastSweep) > p.ttl {
		p.sweepLocked(now)
	}
	c := p.conns[addr]
	if c != nil {
		st := c.cc.GetState()
		if st == connectivity.TransientFailure || st == connectivity.Shutdown || (p.ttl > 0 && now.Sub(c.created) > p.ttl) {
			delete(p.conns, addr)
			c.retire()
			c = nil
		}
	}
	if c == nil {
		opts := []grpc.DialOption{
			grpc.WithTransportCredentials(p.creds),
			// The message size bounds are each codec's callOptions.
			// Fixed windows: dynamic ones make grpc-go ping the server at
			// nearly every call to measure bandwidth (pkg/service/rpcserver
			// fixes the server's for the same reason, with the same sizes).
			grpc.WithStaticStreamWindowSize(streamWindow),
			grpc.WithStaticConnWindowSize(connWindow),
			// The connection keeps its write buffer (32 KiB): a shared
			// one goes back to gRPC's pool at every flush, an allocation
			// each time (pkg/service/rpcserver does the same).
			grpc.WithSharedWriteBuffer(false), //nolint:staticcheck // deprecated, still honoured (grpc-go 1.83)
		}
		if p.timeout > 0 {
			opts = append(opts, grpc.WithDefaultServiceConfig(timeoutConfig(p.timeout)))
		}
		cc, err := grpc.NewClient("passthrough:///"+addr, opts...)
		if err != nil { // a malformed address
			p.mu.Unlock()
			return nil, err
		}
		c = &pooledConn{cc: cc, timeout: p.timeout, created: now}
		p.conns[addr] = c
	}
	c.inFlight.Add(1)
	c.lastUsed.Store(now.UnixNano())
	p.mu.Unlock()
	return c, nil
}

func (c *pooledConn) release() {
	if c.inFlight.Add(-1) == 0 && c.retired.Load() {
		c.close.Do(func() { c.cc.Close() })
	}
}

// retire takes c out of use: it is closed now if no call is on it, else
// by the last call's release. Only the pool retires, with its lock held,
// so no call starts on c after this.
func (c *pooledConn) retire() {
	c.retired.Store(true)
	if c.inFlight.Load() == 0 {
		c.close.Do(func() { c.cc.Close() })
	}
}

// sweepLocked retires connections no call has used for the TTL.
func (p *connPool) sweepLocked(now time.Time) {
	p.lastSweep = now
	for addr, c := range p.conns {
		if now.Sub(time.Unix(0, c.lastUsed.Load())) > p.ttl {
			delete(p.conns, addr)
			c.retire()
		}
	}
}

func (p *connPool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, c := range p.conns {
		delete(p.conns, addr)
		c.retire()
	}
}

// codec is the plugin's codec for a content type, as a gRPC CodecV2 (no
// bridge per call), with the call option that selects it built once.
type codec struct {
	name      string
	marshal   func(v any) ([]byte, error)
	unmarshal func(data []byte, v any) error
	// callOptions are every call's: the codec and the plugin's message
	// size bounds. Passed whole, so that gRPC need not merge them with
	// the connection's defaults (a slice per call).
	callOptions []grpc.CallOption
}

// codecs are the plugin's default codecs by content type.
var codecs = func() map[string]*codec {
	protoC := newCodec("proto", marshalProto, unmarshalProto)
	jsonC := newCodec("json", marshalJSON, unmarshalJSON)
	bytesC := newCodec("bytes", marshalBytes, unmarshalBytes)
	return map[string]*codec{
		"application/json":         jsonC,
		"application/proto":        protoC,
		"application/protobuf":     protoC,
		"application/octet-stream": protoC,
		"application/grpc":         protoC,
		"application/grpc+json":    jsonC,
		"application/grpc+proto":   protoC,
		"application/grpc+bytes":   bytesC,
	}
}()

func newCodec(name string, m func(any) ([]byte, error), u func([]byte, any) error) *codec {
	c := &codec{name: name, marshal: m, unmarshal: u}
	c.callOptions = []grpc.CallOption{
		grpc.ForceCodecV2(c), // content-subtype: the name
		grpc.MaxCallRecvMsgSize(maxMsgSize),
		grpc.MaxCallSendMsgSize(maxMsgSize),
	}
	return c
}

func (c *codec) Name() string { return c.name }

func (c *codec) Marshal(v any) (mem.BufferSlice, error) {
	if w, ok := v.(*wireBody); ok { // encoded by CallerChecks
		return w.bufs[:], nil
	}
	if f, ok := v.(*bytes.Frame); ok {
		return mem.BufferSlice{mem.SliceBuffer(f.Data)}, nil
	}
	b, err := c.marshal(v)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (c *codec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*bytes.Frame); ok {
		f.Data = data.Materialize()
		return nil
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return c.unmarshal(buf.ReadOnlyData(), v)
}

func marshalProto(v any) ([]byte, error) {
	if m := messageV2(v); m != nil {
		return proto.Marshal(m)
	}
	return nil, fmt.Errorf("failed to marshal: %T is not type of *bytes.Frame or proto.Message", v)
}

func unmarshalProto(data []byte, v any) error {
	if m := messageV2(v); m != nil {
		return proto.Unmarshal(data, m)
	}
	return fmt.Errorf("failed to unmarshal: %T is not type of proto.Message", v)
}

func messageV2(v any) proto.Message {
	switch m := v.(type) {
	case proto.Message:
		return m
	case protoadapt.MessageV1:
		return protoadapt.MessageV2Of(m)
	}
	return nil
}

func marshalJSON(v any) ([]byte, error) {
	if m, ok := v.(proto.Message); ok {
		return protojson.Marshal(m)
	}
	return json.Marshal(v)
}

func unmarshalJSON(data []byte, v any) error {
	if len(data) == 0 {
		return nil
	}
	if m, ok := v.(proto.Message); ok {
		return protojson.Unmarshal(data, m)
	}
	return decodeJSON(data, v)
}

// decodeJSON is json.Unmarshal through a pooled json.Decoder, whose state
// (its decodeState, error context and scanner stack) json.Unmarshal makes
// anew at every call: 4 allocations. Input that is not one valid JSON
// value goes to json.Unmarshal for its error, and so does a large one, so
// that no decoder keeps a large buffer.
func decodeJSON(data []byte, v any) error {
	if len(data) > maxPooledJSON || !json.Valid(data) {
		return json.Unmarshal(data, v)
	}
	d := jsonDecoders.Get().(*jsonDecoder)
	d.r.data = data
	err := d.dec.Decode(v) // json.Unmarshal's decoding, of the one value
	d.r.data = nil
	if err == nil { // an error may leave the decoder mid-stream
		jsonDecoders.Put(d)
	}
	return err
}

const maxPooledJSON = 64 << 10

type jsonDecoder struct {
	r   bytesReader
	dec *json.Decoder // reads r
}

// bytesReader reads data, then io.EOF.
type bytesReader struct{ data []byte }

func (r *bytesReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

var jsonDecoders = sync.Pool{New: func() any {
	d := &jsonDecoder{}
	d.dec = json.NewDecoder(&d.r)
	return d
}}

func marshalBytes(v any) ([]byte, error) {
	if b, ok := v.(*[]byte); ok {
		return *b, nil
	}
	return nil, fmt.Errorf("failed to marshal: %T is not type of *[]byte", v)
}

func unmarshalBytes(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("failed to unmarshal: %T is not type of *[]byte", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}
