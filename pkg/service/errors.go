package service

import (
	"context"

	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/server"

	"github.com/example/micro-starter/pkg/wrappers"
)

// ownErrors gives the service's identity to every error a handler returns
// that no service answered, so that no handler has to know:
//   - a plain error becomes a 500 of the service;
//   - an error the service's own client raised (id "go.micro.client": its
//     callee unreachable or timed out, an open circuit) keeps its code, under
//     the service's id.
//
// Either would otherwise reach the caller as an error of go-micro's client,
// which the caller takes for its own connection failing: it retries the
// call on another instance of this service, and retries multiply per hop
// (3 x 3 through gateway -> hello -> user). Under the service's id, the
// caller sees what it is: this service answered that it failed.
//
// The code is kept rather than made a 502: it says what happened (a 503, a
// 408, a 500), and a 4xx must stay a 4xx. An error another service answered
// passes unchanged.
func ownErrors(service string) server.HandlerWrapper {
	return func(next server.HandlerFunc) server.HandlerFunc {
		return func(ctx context.Context, req server.Request, rsp interface{}) error {
			err := next(ctx, req, rsp)
			if err == nil {
				return nil
			}
			e, ok := wrappers.Error(err)
			switch {
			case !ok:
				return merrors.InternalServerError(service, "%s: %v", req.Endpoint(), err)
			case wrappers.RaisedByClient(e) && ctx.Err() != nil:
				// The caller's deadline passed (or it cancelled): its own
				// timer ends its attempt and it retries elsewhere. This
				// answer only races that timer; as the client's timeout it
				// means the same, where under our id it would be a final
				// answer (one hung callee failed requests two hops up).
				return e
			case wrappers.RaisedByClient(e):
				return &merrors.Error{Id: service, Code: e.Code, Detail: e.Detail, Status: e.Status}
			default:
				return e // unwrapped: the gRPC server only recognises the bare type
			}
		}
	}
}
