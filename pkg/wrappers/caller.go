package wrappers

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/codec/bytes"
	merrors "go-micro.dev/v4/errors"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/runtime/protoiface"
)

// CallerChecks is the outermost wrapper: what can fail in the caller fails
// here, before the breaker, the instance order and the retries see the call,
// and is marked as the caller's (ByCaller).
//
//   - A context that has already ended fails at once.
//   - The request is encoded here, once per call, and handed on as bytes.
//     go-micro's gRPC client would encode it inside gRPC on every attempt,
//     after dialling, and report a failure (invalid UTF-8 in a proto
//     string) as a 500 of its own, as if the connection had failed: retried,
//     counted against the callee, and anyone able to send bad input could
//     open the callee's circuit for every client.
//   - A call that fails because the caller gave up counts against nobody
//     (Classify; the client marks the contexts it derives: derivedFrom).
func CallerChecks() client.Wrapper {
	return func(next client.Client) client.Client { return callerChecks{next} }
}

type callerChecks struct{ client.Client }

func (c callerChecks) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	if callerEnded(ctx) {
		return gaveUp(ctx)
	}
	if r, ok, err := encodeRequest(req); err != nil {
		return encodeError(req, err)
	} else if ok {
		req = r
	}
	err := c.Client.Call(ctx, req, rsp, opts...)
	if err != nil && callerEnded(ctx) {
		// The caller gave up: whatever the chain made of that (a 408 from
		// go-micro, a plain context error from the breaker), say so.
		return gaveUp(ctx)
	}
	return err
}

// encodeError is the error of a request that did not encode. Apart from
// Call so that its arguments' room is not in Call's frame, which stays on
// the stack below the call in flight.
func encodeError(req client.Request, err error) error {
	return ByCaller(merrors.InternalServerError(clientID, "%s.%s: encoding the request: %v", req.Service(), req.Endpoint(), err))
}

// gaveUp is the error of a call whose caller's context ended, as go-micro
// words it.
func gaveUp(ctx context.Context) error {
	err := ctx.Err()
	if err == nil { // the deadline has passed; the context's timer is late
		err = context.DeadlineExceeded
	}
	return ByCaller(merrors.New(clientID, err.Error(), 408))
}

// encodedRequest is a request whose body is already encoded. The gRPC
// client's codecs send a *bytes.Frame as it is; ours sends wire, the same
// bytes as gRPC takes them, made once per call rather than per attempt.
// One allocation holds it all, a small body included.
type encodedRequest struct {
	client.Request
	frame bytes.Frame
	wire  wireBody
	small [smallBody]byte // the body, if it fits
}

// smallBody is the size of a body encoded into its request: the services'
// requests are a few dozen bytes.
const smallBody = 128

// encodeRequest is req with its body encoded (encode); ok is false for a
// body or content type left to the client.
func encodeRequest(req client.Request) (*encodedRequest, bool, error) {
	c := wireCodecOf(req.ContentType(), req.Body())
	if c == leftToClient {
		return nil, false, nil
	}
	r := &encodedRequest{Request: req}
	data, err := encode(r.small[:0], c, req.Body())
	if err != nil {
		return nil, false, err
	}
	r.frame.Data = data
	r.wire.sb = data
	r.wire.bufs[0] = &r.wire.sb
	return r, true, nil
}

func (r *encodedRequest) Body() interface{} { return &r.frame }

// wireBody is an encoded message as gRPC sends it: its buffers, read-only.
type wireBody struct {
	sb   mem.SliceBuffer
	bufs [1]mem.Buffer
}

// body is what attempt hands gRPC for req.
func body(req client.Request) any {
	if r, ok := req.(*encodedRequest); ok {
		return &r.wire
	}
	return req.Body()
}

// wireCodec is how go-micro's gRPC client encodes a body (its default
// codecs, client/grpc codec.go).
type wireCodec int

const (
	leftToClient wireCodec = iota // a *bytes.Frame, or a content type we do not encode
	protoCodec
	jsonCodec
)

func wireCodecOf(contentType string, body interface{}) wireCodec {
	if _, ok := body.(*bytes.Frame); ok {
		return leftToClient
	}
	switch contentType {
	case "application/grpc", "application/grpc+proto", "application/proto", "application/protobuf", "application/octet-stream":
		return protoCodec
	case "application/json", "application/grpc+json":
		return jsonCodec
	}
	return leftToClient
}

// encode appends body to dst encoded with c, as go-micro's gRPC client
// encodes it.
func encode(dst []byte, c wireCodec, body interface{}) ([]byte, error) {
	if c == protoCodec {
		switch m := body.(type) {
		case proto.Message:
			return proto.MarshalOptions{}.MarshalAppend(dst, m)
		case protoiface.MessageV1:
			return proto.MarshalOptions{}.MarshalAppend(dst, protoadapt.MessageV2Of(m))
		default:
			return nil, fmt.Errorf("%T is not a proto message", body)
		}
	}
	if m, ok := body.(proto.Message); ok {
		return protojson.MarshalOptions{}.MarshalAppend(dst, m)
	}
	return appendJSON(dst, body)
}

// appendJSON appends v to dst as json.Marshal encodes it, through an
// encoder kept for the next call: json.Marshal copies what it encoded into
// a slice of its own.
func appendJSON(dst []byte, v any) ([]byte, error) {
	a := jsonAppenders.Get().(*jsonAppender)
	a.buf = dst
	err := a.enc.Encode(v) // as json.Marshal, and a newline
	b := a.buf
	a.buf = nil
	jsonAppenders.Put(a)
	if err != nil {
		return nil, err
	}
	return b[:len(b)-1], nil
}

type jsonAppender struct {
	buf []byte
	enc *json.Encoder // writes to buf
}

func (a *jsonAppender) Write(p []byte) (int, error) {
	a.buf = append(a.buf, p...)
	return len(p), nil
}

var jsonAppenders = sync.Pool{New: func() any {
	a := &jsonAppender{}
	a.enc = json.NewEncoder(a)
	return a
}}
