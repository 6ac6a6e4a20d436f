package wrappers

import (
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
