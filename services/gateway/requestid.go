package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"go-micro.dev/v4/metadata"

	"github.com/example/micro-starter/pkg/tracing"
)

// requestIDHeader names the request id in every answer of the gateway and
// in the go-micro metadata of every call it makes for the request (the
// gRPC client sends it in lower case, as gRPC requires).
//
// The gateway always makes its own id and ignores one sent by the client:
// its callers are anonymous, and an id they choose is not unique (anyone
// can reuse another's id, or send one id with every request), so a 5xx
// answer's id would no longer name one log line. A proxy in front that
// wants to join its logs with ours can log this header of the answer.
const requestIDHeader = "X-Request-Id"

// newRequestID returns 16 hex digits from crypto/rand: unique enough for
// finding a log line, and nothing about the request or the host in it.
func newRequestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails (crypto/rand crashes the program instead)
	return hex.EncodeToString(b)
}

// withRequestID keeps id in ctx as go-micro metadata, so that every call
// made with ctx carries it to the service called, and for the gateway's own
// log lines. A request not sampled (traced) takes the trace id its request
// id names (tracing.WithRootRequestID): the services called derive the same
// from the request id, so its calls carry no traceparent; a sampled one's
// is each attempt's own (tracing.CallWrapper).
func withRequestID(ctx context.Context, id string) context.Context {
	md, _ := metadata.FromContext(ctx) // a copy
	if md == nil {
		md = metadata.Metadata{}
	}
	md[requestIDHeader] = id
	return tracing.WithRootRequestID(metadata.NewContext(ctx, md), id)
}

// requestID is the id withRequestID kept in ctx.
func requestID(ctx context.Context) string {
	id, _ := metadata.Get(ctx, requestIDHeader)
	return id
}
