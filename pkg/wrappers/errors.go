package wrappers

import (
	"context"
	"errors"
	"strings"
	"time"

	merrors "go-micro.dev/v4/errors"
)

// Error returns the go-micro error in err, and false if there is none.
//
// An error a service returned reaches the caller as its JSON text, not as
// an *errors.Error, so merrors.As alone misses it (and with it every 4xx a
// service answers); go-micro's own errors.FromError misses wrapped errors.
func Error(err error) (*merrors.Error, bool) {
	if err == nil {
		return nil, false
	}
	if e, ok := merrors.As(err); ok {
		return e, true
	}
	e := merrors.Parse(err.Error())
	return e, e.Code != 0
}

// Fault says who a call's outcome is to blame on. Classify is the one place
// that decides it: the breaker counts only NetworkFault and CalleeFault
// against a circuit, the outlier record only those against an instance, and
// only a NetworkFault is retried on another instance.
type Fault int

const (
	// NoFault: the call worked, or the callee answered that the request was
	// wrong (a 4xx other than 408): either way the callee is healthy.
	NoFault Fault = iota
	// CallerFault: the caller failed before the callee could answer: the
	// request could not be encoded or failed the caller's own checks, or
	// the caller's context ended first. It says nothing about the callee,
	// and another instance would fail the same way.
	CallerFault
	// NetworkFault: no answer from the instance: a refused or broken
	// connection, an attempt that timed out, no instance at all.
	NetworkFault
	// CalleeFault: the callee answered with a failure (a 5xx, or a 408
	// under its own id).
	CalleeFault
)

func (f Fault) String() string {
	switch f {
	case NoFault:
		return "no fault"
	case CallerFault:
		return "caller"
	case NetworkFault:
		return "network"
	case CalleeFault:
		return "callee"
	}
	return "unknown"
}

// Classify says who is to blame for err, returned by a call made with ctx.
//
// go-micro's gRPC client reports a request it failed to marshal as a 500
// of its own, like a failed dial, and the caller's own cancelled context as
// a 408, like an attempt timeout: their id and code cannot tell them apart.
// So caller failures are told where they happen: ByCaller marks errors the
// caller found itself, and the client marks the contexts it derives from
// the caller's (its request timeout: derivedFrom) with the caller's.
func Classify(ctx context.Context, err error) Fault {
	if err == nil {
		return NoFault
	}
	var ce callerError
	if errors.As(err, &ce) {
		return CallerFault
	}
	e, ok := Error(err)
	if ok && !raisedByClient(e) { // the callee answered
		if isRequestError(e.Code) {
			return NoFault
		}
		return CalleeFault
	}
	if callerEnded(ctx) {
		return CallerFault
	}
	if !ok {
		return CalleeFault
	}
	switch {
	// gRPC reports a refused or closed connection as Unavailable (503), a
	// failed dial as 500, an attempt that ran out of time as 408. A TLS
	// handshake that fails (a callee whose certificate does not name the
	// service called: an impostor or a misconfigured instance) is an
	// Unavailable too: retried elsewhere, counted against that instance.
	case e.Code == 503 || e.Code == 500 || e.Code == 408:
		return NetworkFault
	case isRequestError(e.Code): // a gRPC status from a server that is not go-micro's
		return NoFault
	default:
		return CalleeFault
	}
}

func isRequestError(code int32) bool { return code >= 400 && code < 500 && code != 408 }

// raisedByClient reports an error a go-micro client raised itself (no
// answer, or an answer it could not read), as opposed to one a service
// returned under its own id.
func raisedByClient(e *merrors.Error) bool { return strings.HasPrefix(e.Id, clientID) }

// RaisedByClient reports whether err is an error a go-micro client raised
// itself rather than one a service answered. A server passing such an error
// on must give it its own id (pkg/service does), or its callers would take
// it for their own client's and retry it.
func RaisedByClient(err error) bool {
	e, ok := Error(err)
	return ok && raisedByClient(e)
}

// ByCaller marks err as the caller's own failure, found before the request
// left it (bad input a client-side check rejected): the breaker, the outlier
// record and the retries then leave it alone, whatever its code.
func ByCaller(err error) error {
	if err == nil {
		return nil
	}
	return callerError{err}
}

type callerError struct{ err error }

func (e callerError) Error() string { return e.err.Error() }
func (e callerError) Unwrap() error { return e.err }

// callerKey marks the context a caller passed to Call.
type callerKey struct{}

// derivedFrom marks ctx, which the client derived from caller (its request
// timeout), as caller's: the client marks only the contexts it makes, so a
// call that makes none (a caller with a deadline of its own, or the first
// attempt of one without) costs no mark.
func derivedFrom(ctx, caller context.Context) context.Context {
	if c, ok := caller.Value(callerKey{}).(context.Context); ok {
		caller = c
	}
	return context.WithValue(ctx, callerKey{}, caller)
}

// callerEnded reports whether the caller's context has ended. Without a
// mark, ctx is taken to be the caller's.
//
// A passed deadline counts even before ctx.Err() says so: the context's
// timer can fire after gRPC has already failed the attempt for it.
func callerEnded(ctx context.Context) bool {
	if ctx == nil {
		return false
	}
	if c, ok := ctx.Value(callerKey{}).(context.Context); ok {
		ctx = c
	}
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}
