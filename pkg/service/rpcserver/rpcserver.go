// Package rpcserver is go-micro's gRPC server (server/grpc v1.2.0) with
// unary calls dispatched by us: registration, TLS, listening, draining and
// stopping stay the plugin's, and so does the wire format, so its clients
// and ours call it as before.
//
// The plugin's dispatch pays for every request what only changes when a
// handler is registered: it marshals the request it has just decoded a
// second time (for server.Request.Read, which nothing here calls), builds
// the method name with fmt, and chains the handler wrappers anew
// (BenchmarkLayers, docs/performance.md). Here the method table, its names
// and the wrapped handler are built once; a request costs its metadata,
// its context, its decoding and the handler's reflective call.
//
// Streaming endpoints are not dispatched: a call to one fails as
// Unimplemented. The services here have none.
package rpcserver

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"reflect"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	grpcserver "github.com/go-micro/plugins/v4/server/grpc"
	"go-micro.dev/v4/codec"
	frame "go-micro.dev/v4/codec/bytes"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/logger"
	meta "go-micro.dev/v4/metadata"
	"go-micro.dev/v4/server"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	gmetadata "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/protoadapt"

	"github.com/example/micro-starter/pkg/tracing"
)

// NewServer is go-micro's gRPC server with opts, its unary calls
// dispatched here. Its grpc-go options are ours: a grpcserver.Options
// among opts holds until Start, which sets them again.
func NewServer(opts ...server.Option) server.Server {
	d := &dispatcher{services: map[string]map[string]*method{}, mdKey: tracing.MetadataKey()}
	grpcOpts := []grpc.ServerOption{
		grpc.UnknownServiceHandler(d.handle),
		grpc.InTapHandle(d.tap),
		// Messages reach handle as gRPC read them, and leave as handle
		// encoded them (rawCodec): no bridge to the plugin's codecs and no
		// copy of each request per call.
		grpc.ForceServerCodecV2(rawCodec{}),
		// Fixed flow-control windows: with the default (dynamic) ones
		// grpc-go pings the peer to measure bandwidth at every burst of
		// data, that is, at nearly every call when calls are sparse.
		grpc.StaticStreamWindowSize(streamWindow),
		grpc.StaticConnWindowSize(connWindow),
		// Each connection keeps its write buffer (32 KiB): a shared one
		// goes back to gRPC's pool at every flush, an allocation each time.
		grpc.SharedWriteBuffer(false), //nolint:staticcheck // deprecated, still honoured (grpc-go 1.83)
	}
	inner := grpcserver.NewServer(append([]server.Option{grpcserver.Options(grpcOpts...)}, opts...)...)
	d.server = inner
	// The plugin's Stop waits for the requests counted here (server.Wait).
	d.wg, _ = inner.Options().Context.Value("wait").(*sync.WaitGroup)
	return &Server{Server: inner, d: d, grpcOpts: grpcOpts}
}

// Start serves with stream workers. grpc-go starts each call on a new
// goroutine, whose small stack then grows (runtime.newstack) through the
// wrappers, the handler and the handler's own calls: 14-19 % of hello's
// CPU under load. Workers keep their grown stacks from call to call; a
// call that finds every worker busy gets a goroutine of its own, as
// without them: nothing ever waits for one.
//
// They are added here, to the grpc.Server the plugin serves with: it
// builds a new one at every Init with options and never stops the one it
// replaces, whose workers would wait for ever.
func (s *Server) Start() error {
	withWorkers := append(s.grpcOpts[:len(s.grpcOpts):len(s.grpcOpts)], grpc.NumStreamWorkers(streamWorkers))
	if err := s.Server.Init(grpcserver.Options(withWorkers...)); err != nil {
		return err
	}
	return s.Server.Start()
}

// streamWorkers is how many calls can run on a reused goroutine at once;
// more run on new ones. The calls in flight on a service are its callers'
// concurrency (64 load clients in bench/load), not its CPUs: a handler
// mostly waits on its own calls. An idle worker costs little: the garbage
// collector shrinks its stack while it waits.
const streamWorkers = 64

// streamWindow and connWindow are the flow-control windows (bytes) of each
// call and of each connection (pkg/wrappers sets the same on its client).
// A call's window holds a LAN's bandwidth-delay product (10 Gb/s over
// 0.5 ms: 625 KB), which grpc-go's dynamic windows would grow to (up to
// 16 MiB), pinging all the while.
const (
	streamWindow = 1 << 20
	connWindow   = 4 << 20
)

// Server is the plugin's server with Handle also registering in the
// dispatch table.
type Server struct {
	server.Server
	d        *dispatcher
	grpcOpts []grpc.ServerOption // all but the workers (see Start)
}

func (s *Server) Handle(h server.Handler) error {
	if err := s.Server.Handle(h); err != nil {
		return err
	}
	return s.d.register(h.Handler())
}

// Register and Deregister are the plugin's (pkg/service deregisters
// before it drains).
func (s *Server) Register() error {
	r, ok := s.Server.(interface{ Register() error })
	if !ok {
		return fmt.Errorf("rpcserver: %s cannot register", s.Server)
	}
	return r.Register()
}

func (s *Server) Deregister() error {
	d, ok := s.Server.(interface{ Deregister() error })
	if !ok {
		return fmt.Errorf("rpcserver: %s cannot deregister", s.Server)
	}
	return d.Deregister()
}

type dispatcher struct {
	server  server.Server
	wg      *sync.WaitGroup
	mdKey   any // go-micro's context key of the metadata (tracing.MetadataKey)
	remotes remotes

	mu       sync.RWMutex
	services map[string]map[string]*method // Go type name -> method name -> method
	// wrapped is call inside the server's handler wrappers, built again
	// when they change.
	wrapped  server.HandlerFunc
	wrappers []server.HandlerWrapper
}

// method is one unary endpoint of a registered handler.
type method struct {
	endpoint string // "UserService.Get", as the plugin names it
	rcvr     reflect.Value
	fn       reflect.Value
	argPtr   bool // the method takes a pointer to its argument
	// frame holds what a call needs, in one allocation: the request (R),
	// the argument (A) and the reply (P).
	frame reflect.Type
}

// Fields of a method's frame.
const (
	frameRequest = iota
	frameArg
	frameReply
)

var typeOfRequest = reflect.TypeFor[request]()

var (
	typeOfError   = reflect.TypeFor[error]()
	typeOfContext = reflect.TypeFor[context.Context]()
)

// register adds the unary methods of rcvr as the plugin finds them
// (func(ctx, *Req, *Rsp) error), under its type's name. The plugin has
// already checked and registered rcvr.
func (d *dispatcher) register(rcvr any) error {
	v := reflect.ValueOf(rcvr)
	name := reflect.Indirect(v).Type().Name()
	methods := map[string]*method{}
	t := v.Type()
	for i := range t.NumMethod() {
		m := t.Method(i)
		mt := m.Type
		if m.PkgPath != "" || mt.NumIn() != 4 || mt.NumOut() != 1 || mt.Out(0) != typeOfError ||
			!mt.In(1).Implements(typeOfContext) || mt.In(3).Kind() != reflect.Pointer {
			continue // a stream, or not an endpoint: the plugin decides
		}
		arg, argPtr := mt.In(2), false
		if arg.Kind() == reflect.Pointer {
			arg, argPtr = arg.Elem(), true
		}
		methods[m.Name] = &method{
			endpoint: name + "." + m.Name,
			rcvr:     v,
			fn:       m.Func,
			argPtr:   argPtr,
			frame: reflect.StructOf([]reflect.StructField{
				frameRequest: {Name: "R", Type: typeOfRequest},
				frameArg:     {Name: "A", Type: arg},
				frameReply:   {Name: "P", Type: mt.In(3).Elem()},
			}),
		}
	}
	d.mu.Lock()
	d.services[name] = methods
	d.mu.Unlock()
	return nil
}

// lookup finds the method of a gRPC method name, "/pkg.Service/Method":
// the plugin ignores the package part, and so does this.
func (d *dispatcher) lookup(full string) (*method, string, string) {
	if len(full) == 0 || full[0] != '/' {
		return nil, "", ""
	}
	svc, name, ok := strings.Cut(full[1:], "/")
	if !ok || svc == "" || name == "" || strings.IndexByte(name, '/') >= 0 {
		return nil, "", ""
	}
	if i := strings.LastIndexByte(svc, '.'); i >= 0 {
		svc = svc[i+1:]
	}
	d.mu.RLock()
	m := d.services[svc][name]
	d.mu.RUnlock()
	return m, svc, name
}

// handler is the server's handler wrappers around call, built once for
// each set of wrappers, and the server's name: both from one copy of the
// server's options, which is large and stays out of handle's frame (every
// frame below a call in flight counts in the goroutine's stack).
func (d *dispatcher) handler() (server.HandlerFunc, string) {
	o := d.server.Options()
	ws := o.HdlrWrappers
	d.mu.RLock()
	h, same := d.wrapped, d.wrapped != nil && sameWrappers(d.wrappers, ws)
	d.mu.RUnlock()
	if same {
		return h, o.Name
	}
	h = call
	for i := len(ws) - 1; i >= 0; i-- {
		h = ws[i](h)
	}
	d.mu.Lock()
	d.wrapped, d.wrappers = h, ws
	d.mu.Unlock()
	return h, o.Name
}

func sameWrappers(a, b []server.HandlerWrapper) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// handle serves one call: the plugin's handler and processRequest, less
// what they redo per request.
func (d *dispatcher) handle(_ any, stream grpc.ServerStream) error {
	if d.wg != nil {
		d.wg.Add(1)
		defer d.wg.Done()
	}
	full, ok := grpc.MethodFromServerStream(stream)
	if !ok {
		return status.Errorf(codes.Internal, "method does not exist in context")
	}
	m, svc, name := d.lookup(full)
	if m == nil {
		return unknownMethod(full, svc, name)
	}

	// The metadata as go-micro's (see tap), made by tap as the call
	// arrived, or here for a call tap left alone.
	sctx := stream.Context()
	ctx, ct := sctx, ""
	if md, ok := sctx.Value(d.mdKey).(meta.Metadata); ok {
		ct = md["content-type"] // tap made it only with one
	} else {
		var cancel context.CancelFunc
		ctx, ct, cancel = d.withMetadata(sctx)
		if cancel != nil {
			defer cancel()
		}
	}

	c, err := codecOf(ct)
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	frame := reflect.New(m.frame).Elem()
	req := frame.Field(frameRequest).Addr().Interface().(*request)
	h, name := d.handler()
	// Fields set in the new (zeroed) frame: a request literal assigned
	// would be built in handle's frame first, 300 bytes more on the stack.
	req.service, req.contentType, req.method = name, ct, m
	argp := frame.Field(frameArg).Addr()
	if err := req.decode(stream, c, argp.Interface()); err != nil {
		return err
	}
	req.arg = argp
	if !m.argPtr {
		req.arg = argp.Elem()
	}
	reply := frame.Field(frameReply).Addr().Interface()
	if err := h(ctx, req, reply); err != nil {
		return errorStatus(err)
	}
	if err := req.out.encode(c, reply); err != nil {
		return status.Errorf(codes.Internal, "grpc: error while marshaling: %v", err.Error())
	}
	return stream.SendMsg(&req.out)
}

// unknownMethod is the plugin's answer to a method not registered. Apart
// from handle so that its arguments' room is not in handle's frame, which
// stays on the stack while the handler runs.
func unknownMethod(full, svc, name string) error {
	if svc == "" {
		return status.Errorf(codes.InvalidArgument, "malformed method name: %q", full)
	}
	return status.Errorf(codes.Unimplemented, "unknown service %s.%s", svc, name)
}

// tap makes a call's go-micro metadata from its headers as gRPC has just
// read them: gRPC's metadata.FromIncomingContext, which handle would
// otherwise read them through, copies the map and every value (6
// allocations a call). The metadata is go-micro's: one value per key, the
// plugin's own headers removed, the caller's address as Remote. A call
// with the plugin's "timeout" header (a plain go-micro client's) is left to
// handle, which applies it.
func (d *dispatcher) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	h := info.Header
	if _, ok := h["timeout"]; ok {
		return ctx, nil
	}
	if _, ok := h["content-type"]; !ok {
		return ctx, nil
	}
	md := make(meta.Metadata, len(h)+1)
	for k, v := range h {
		if k == "x-content-type" {
			continue
		}
		md[k] = joined(v)
	}
	if p, ok := peer.FromContext(ctx); ok {
		md["Remote"] = d.remotes.of(p)
	}
	return meta.NewContext(ctx, md), nil
}

// withMetadata is sctx with the go-micro metadata of a call tap left
// alone, and the plugin's timeout applied (cancel, if not nil, ends it);
// ct is the call's content type.
func (d *dispatcher) withMetadata(sctx context.Context) (ctx context.Context, ct string, cancel context.CancelFunc) {
	gmd, _ := gmetadata.FromIncomingContext(sctx)
	md := make(meta.Metadata, len(gmd)+1)
	ct, timeout := "application/grpc", ""
	for k, v := range gmd {
		s := joined(v)
		switch k {
		case "timeout":
			timeout = s
			continue
		case "x-content-type":
			if _, set := gmd["content-type"]; !set {
				ct = s
			}
			continue
		case "content-type":
			ct = s
		}
		md[k] = s
	}
	if p, ok := peer.FromContext(sctx); ok {
		md["Remote"] = d.remotes.of(p)
	}
	ctx = meta.NewContext(sctx, md)
	if timeout != "" {
		if n, err := strconv.ParseUint(timeout, 10, 64); err == nil {
			ctx, cancel = context.WithTimeout(ctx, time.Duration(n))
		}
	}
	return ctx, ct, cancel
}

func joined(v []string) string {
	if len(v) == 1 {
		return v[0]
	}
	return strings.Join(v, ", ")
}

// call is the innermost handler: the method itself, a panic recovered as
// the plugin does.
func call(ctx context.Context, r server.Request, reply any) (err error) {
	req, ok := r.(*request)
	if !ok {
		return merrors.InternalServerError("go.micro.server", "handler wrapper replaced the request with %T", r)
	}
	defer func() {
		if p := recover(); p != nil {
			logger.Extract(ctx).Errorf("panic recovered: %v, stack: %s", p, string(debug.Stack()))
			err = merrors.InternalServerError("go.micro.server", "panic recovered: %v", p)
		}
	}()
	m := req.method
	// ctx as a value of the interface type the method takes, held in the
	// request: reflect would otherwise allocate to convert it.
	req.ctx = ctx
	out := m.fn.Call([]reflect.Value{m.rcvr, reflect.ValueOf(&req.ctx).Elem(), req.arg, reflect.ValueOf(reply)})
	if e := out[0].Interface(); e != nil {
		return e.(error)
	}
	return nil
}

// errorStatus is the plugin's answer to a handler's error: a go-micro
// error (or another proto message) travels in the status details, and
// its text is the status message, where the client finds it.
func errorStatus(appErr error) error {
	switch verr := appErr.(type) {
	case *merrors.Error:
		verr.Detail = strings.ToValidUTF8(verr.Detail, "")
		st, err := status.New(grpcCode(verr.Code), verr.Error()).WithDetails(verr)
		if err != nil {
			return err
		}
		return st.Err()
	case protoadapt.MessageV1:
		st, err := status.New(convertCode(appErr), appErr.Error()).WithDetails(verr)
		if err != nil {
			return err
		}
		return st.Err()
	default:
		return status.New(convertCode(appErr), appErr.Error()).Err()
	}
}

func grpcCode(code int32) codes.Code {
	switch code {
	case http.StatusOK:
		return codes.OK
	case http.StatusBadRequest:
		return codes.InvalidArgument
	case http.StatusRequestTimeout:
		return codes.DeadlineExceeded
	case http.StatusNotFound:
		return codes.NotFound
	case http.StatusConflict:
		return codes.AlreadyExists
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusPreconditionFailed:
		return codes.FailedPrecondition
	case http.StatusNotImplemented:
		return codes.Unimplemented
	case http.StatusInternalServerError:
		return codes.Internal
	case http.StatusServiceUnavailable:
		return codes.Unavailable
	}
	return codes.Unknown
}

// convertCode is the plugin's code for a plain error.
func convertCode(err error) codes.Code {
	switch err {
	case io.EOF:
		return codes.OutOfRange
	case io.ErrClosedPipe, io.ErrNoProgress, io.ErrShortBuffer, io.ErrShortWrite, io.ErrUnexpectedEOF:
		return codes.FailedPrecondition
	case os.ErrInvalid:
		return codes.InvalidArgument
	case context.Canceled:
		return codes.Canceled
	case context.DeadlineExceeded:
		return codes.DeadlineExceeded
	}
	switch {
	case os.IsExist(err):
		return codes.AlreadyExists
	case os.IsNotExist(err):
		return codes.NotFound
	case os.IsPermission(err):
		return codes.PermissionDenied
	}
	return codes.Unknown
}

// request is the server.Request the handler wrappers see.
type request struct {
	service     string
	contentType string
	method      *method
	ctx         context.Context // the method's (call)
	arg         reflect.Value
	in          mem.BufferSlice // the request as gRPC read it (decode)
	out         outbound        // the answer, encoded
}

func (r *request) Service() string           { return r.service }
func (r *request) Method() string            { return r.method.endpoint }
func (r *request) Endpoint() string          { return r.method.endpoint }
func (r *request) ContentType() string       { return r.contentType }
func (r *request) Header() map[string]string { return nil }
func (r *request) Body() interface{}         { return r.arg.Interface() }
func (r *request) Codec() codec.Reader       { return nil }
func (r *request) Stream() bool              { return false }

// Read is the request encoded again, as the plugin's Read gives it: only
// when asked for.
func (r *request) Read() ([]byte, error) {
	sub := "proto"
	if _, s, ok := strings.Cut(r.contentType, "+"); ok {
		sub = s
	} else if strings.Contains(r.contentType, "json") {
		sub = "json"
	}
	c := encoding.GetCodecV2(sub)
	if c == nil {
		return nil, fmt.Errorf("unsupported Content-Type: %s", r.contentType)
	}
	data, err := c.Marshal(r.Body())
	if err != nil {
		return nil, err
	}
	return data.Materialize(), nil
}

// msgCodec is the codec grpc-go would pick for a content type (its
// server.getCodec): the one registered under the content-subtype (the
// plugin registers json, proto and bytes), proto when there is none. Only
// one of v1 and v2 is set.
type msgCodec struct {
	v1 encoding.Codec
	v2 encoding.CodecV2
	// inPlace: v1 decodes from gRPC's buffer without keeping it (the
	// plugin's json and proto codecs), so the buffer needs no copy.
	inPlace bool
}

func codecOf(contentType string) (msgCodec, error) {
	sub, ok := contentSubtype(contentType)
	if !ok || sub == "" {
		sub = "proto"
	}
	for _, name := range []string{sub, "proto"} {
		if c := encoding.GetCodec(name); c != nil {
			return msgCodec{v1: c, inPlace: name == "proto" || name == "json"}, nil
		}
		if c := encoding.GetCodecV2(name); c != nil {
			return msgCodec{v2: c}, nil
		}
	}
	return msgCodec{}, fmt.Errorf("no codec for %q", contentType)
}

// contentSubtype is grpc-go's (internal/grpcutil): "json" of
// "application/grpc+json", lower case.
func contentSubtype(contentType string) (string, bool) {
	const base = "application/grpc"
	if contentType == base {
		return "", true
	}
	if !strings.HasPrefix(contentType, base) {
		return "", false
	}
	switch contentType[len(base)] {
	case '+', ';':
		return strings.ToLower(contentType[len(base)+1:]), true
	}
	return "", false
}

// decode reads the request into v with c, as gRPC would have.
func (r *request) decode(stream grpc.ServerStream, c msgCodec, v any) error {
	if err := stream.RecvMsg(&r.in); err != nil {
		return err
	}
	data := r.in
	defer data.Free()
	var err error
	switch {
	case c.v2 != nil:
		err = c.v2.Unmarshal(data, v)
	case c.inPlace && len(data) == 1 && !keepsBytes(v):
		err = c.v1.Unmarshal(data[0].ReadOnlyData(), v)
	default:
		err = c.v1.Unmarshal(data.Materialize(), v)
	}
	if err != nil {
		return status.Errorf(codes.Internal, "grpc: failed to unmarshal the received message: %v", err)
	}
	return nil
}

// keepsBytes: the plugin's codecs keep the bytes they decode into a
// *bytes.Frame.
func keepsBytes(v any) bool {
	_, ok := v.(*frame.Frame)
	return ok
}

// outbound is an encoded answer, as rawCodec sends it. Its buffer lives in
// the request, so that sending it allocates nothing; so does a small
// answer, with the plugin's codecs (appendMarshaler).
type outbound struct {
	data  mem.BufferSlice
	sb    mem.SliceBuffer
	buf   [1]mem.Buffer
	small [smallAnswer]byte
}

// smallAnswer is the size of an answer encoded into its request: the
// services' answers are a few dozen bytes.
const smallAnswer = 128

// appendMarshaler is a codec that can encode into a buffer given (the
// plugin's json and proto codecs), or into one of its own if that is short.
type appendMarshaler interface {
	AppendMarshal(dst []byte, v any) ([]byte, error)
}

func (o *outbound) encode(c msgCodec, v any) error {
	if c.v2 != nil {
		data, err := c.v2.Marshal(v)
		o.data = data
		return err
	}
	var b []byte
	var err error
	if a, ok := c.v1.(appendMarshaler); ok {
		b, err = a.AppendMarshal(o.small[:0], v)
	} else {
		b, err = c.v1.Marshal(v)
	}
	if err != nil {
		return err
	}
	o.sb = b
	o.buf[0] = &o.sb
	o.data = o.buf[:]
	return nil
}

// rawCodec is the server's only codec: handle decodes and encodes each
// message itself with the codec of its content type (codecOf), so gRPC
// hands over what it read and sends what it is given.
type rawCodec struct{}

func (rawCodec) Name() string { return "rpcserver-raw" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	o, ok := v.(*outbound)
	if !ok {
		return nil, fmt.Errorf("rpcserver: cannot send %T", v)
	}
	return o.data, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	p, ok := v.(*mem.BufferSlice)
	if !ok {
		return fmt.Errorf("rpcserver: cannot receive into %T", v)
	}
	data.Ref() // gRPC frees data when this returns; decode frees it after use
	*p = data
	return nil
}

// remotes holds each connection's remote address as text (go-micro's
// Remote metadata), made once per connection rather than per call. gRPC
// gives every call on a connection the same net.Addr; keyed by it alone,
// not by the *peer.Peer, which holds a TLS connection's state.
// Bounded: emptied when it holds maxRemotes.
type remotes struct {
	m sync.Map // net.Addr -> string
	n atomic.Int64
}

const maxRemotes = 256

func (r *remotes) of(p *peer.Peer) string {
	switch p.Addr.(type) {
	case *net.TCPAddr, *net.UnixAddr: // comparable, and the same per connection
	default:
		return p.Addr.String()
	}
	if s, ok := r.m.Load(p.Addr); ok {
		return s.(string)
	}
	s := p.Addr.String()
	if r.n.Add(1) > maxRemotes {
		r.m.Clear()
		r.n.Store(1)
	}
	r.m.Store(p.Addr, s)
	return s
}
