package wrappers

import (
	"context"
	"encoding/json"
	"fmt"

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
	if data, ok, err := encode(req.ContentType(), req.Body()); err != nil {
		return ByCaller(merrors.InternalServerError(clientID, "%s.%s: encoding the request: %v", req.Service(), req.Endpoint(), err))
	} else if ok {
		req = newEncodedRequest(req, data)
	}
	err := c.Client.Call(ctx, req, rsp, opts...)
	if err != nil && callerEnded(ctx) {
		// The caller gave up: whatever the chain made of that (a 408 from
		// go-micro, a plain context error from the breaker), say so.
		return gaveUp(ctx)
	}
	return err
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
// One allocation holds it all.
type encodedRequest struct {
	client.Request
	frame bytes.Frame
	wire  wireBody
}

func newEncodedRequest(req client.Request, data []byte) *encodedRequest {
	r := &encodedRequest{Request: req, frame: bytes.Frame{Data: data}}
	r.wire.sb = data
	r.wire.bufs[0] = &r.wire.sb
	return r
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

// encode encodes body as go-micro's gRPC client does for contentType (its
// default codecs, client/grpc codec.go); ok is false for a body or content
// type it leaves to the client.
func encode(contentType string, body interface{}) (data []byte, ok bool, err error) {
	if _, ok := body.(*bytes.Frame); ok {
		return nil, false, nil
	}
	var b []byte
	switch contentType {
	case "application/grpc", "application/grpc+proto", "application/proto", "application/protobuf", "application/octet-stream":
		switch m := body.(type) {
		case proto.Message:
			b, err = proto.Marshal(m)
		case protoiface.MessageV1:
			b, err = proto.Marshal(protoadapt.MessageV2Of(m))
		default:
			err = fmt.Errorf("%T is not a proto message", body)
		}
	case "application/json", "application/grpc+json":
		if m, ok := body.(proto.Message); ok {
			b, err = protojson.Marshal(m)
		} else {
			b, err = json.Marshal(body)
		}
	default:
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}
