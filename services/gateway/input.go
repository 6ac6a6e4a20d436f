package main

import (
	"net/http"
	"strconv"
	"unicode/utf8"
)

// The gateway checks the form of what it forwards, one function per kind
// of field; the services check the meaning (what a user id looks like, how
// long a name may be) and answer their own 400. The gateway's part is what
// must never reach a call: a string that is not UTF-8 cannot even be
// encoded by the RPC client (a failure counted against the service), and an
// overlong one is work for nothing.
const (
	// maxIDBytes is well above the 64 characters of a user id.
	maxIDBytes = 128
	// maxTextBytes is 100 characters of up to 4 bytes each: the longest
	// name hello takes.
	maxTextBytes = 400
	// maxNumberBytes is the length of -2147483648, the longest int32.
	maxNumberBytes = 11
)

// checkForm returns a 400 naming field if v is not UTF-8 or longer than
// max bytes. The value itself is not echoed: it is not fit to print.
func checkForm(field, v string, max int) error {
	if !utf8.ValidString(v) {
		return badRequest("%s: not valid UTF-8", field)
	}
	if len(v) > max {
		return badRequest("%s: longer than %d bytes", field, max)
	}
	return nil
}

// idField checks an identifier: a user id from the path, the query or a body.
func idField(field, v string) error { return checkForm(field, v, maxIDBytes) }

// textField checks free text, such as a name.
func textField(field, v string) error { return checkForm(field, v, maxTextBytes) }

// queryInt returns the whole number in query parameter name, 0 if absent.
func queryInt(r *http.Request, name string) (int32, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	if err := checkForm(name, v, maxNumberBytes); err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0, badRequest("%s: %q is not a whole number", name, v)
	}
	return int32(n), nil
}

// bodyForm checks a request body before it is decoded: JSON is UTF-8, and
// encoding/json would otherwise replace bytes that are not with U+FFFD and
// forward a name the caller never sent.
func bodyForm(b []byte) error {
	if !utf8.Valid(b) {
		return badRequest("invalid JSON body: not valid UTF-8")
	}
	return nil
}
