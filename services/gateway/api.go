package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	merrors "go-micro.dev/v4/errors"
	"go.opentelemetry.io/otel/trace"

	"github.com/example/micro-starter/pkg/metrics"
	"github.com/example/micro-starter/pkg/wrappers"
	hellopb "github.com/example/micro-starter/services/hello/proto"
	userpb "github.com/example/micro-starter/services/user/proto"
)

const maxBodyBytes = 1 << 20

// API is the HTTP/JSON face of the services, for people and curl.
type API struct {
	users userpb.UserService
	hello hellopb.HelloService
	// ready reports whether calls can be served now: the registry answers
	// and every service the gateway calls has an instance.
	ready func(context.Context) error
	// limit refuses a client's requests beyond its rate; nil: no limit.
	limit *rateLimiter
	log   *slog.Logger
	// metrics counts requests by route and status; nil: not counted.
	metrics *metrics.Metrics
}

// Handler routes the API's endpoints.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users", a.listUsers)
	mux.HandleFunc("GET /users/{id}", a.getUser)
	mux.HandleFunc("GET /hello", a.helloQuery)
	mux.HandleFunc("POST /hello", a.helloBody)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := newRequestID()
		w.Header().Set(requestIDHeader, id)
		r = r.WithContext(withRequestID(r.Context(), id))
		// Matched before the limit, so that a refused request is counted
		// under its route. Matching twice (here and in mux.ServeHTTP, well
		// under a microsecond) keeps ServeMux in charge of path values,
		// which only its ServeHTTP sets.
		h, pattern := mux.Handler(r)
		metrics.Route(w, pattern)
		// Every path is limited, /healthz and /readyz too: probes come from
		// one address a few times a minute, far below any limit, and an
		// unlimited /readyz would let anyone make the gateway ask the
		// registry as often as they like.
		if a.limit != nil {
			if ok, wait := a.limit.allow(clientOf(r)); !ok {
				a.writeError(w, r, &tooManyRequests{retryAfter: wait})
				return
			}
		}
		if pattern == "" {
			a.noRoute(w, r, h)
			return
		}
		trace.SpanFromContext(r.Context()).SetName(pattern) // traced's span, named after the route
		mux.ServeHTTP(w, r)
	})
	if a.metrics == nil {
		return h
	}
	return a.metrics.HTTP(h)
}

// noRoute answers a request that no route takes in JSON, like every other
// error of the API: ServeMux's own answer, muxAnswer (404, or 405 with the
// Allow header), is plain text. Only its status and Allow header are kept.
func (a *API) noRoute(w http.ResponseWriter, r *http.Request, muxAnswer http.Handler) {
	answer := &statusOnly{header: http.Header{}}
	muxAnswer.ServeHTTP(answer, r)
	if answer.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", answer.header.Get("Allow"))
		a.writeError(w, r, merrors.MethodNotAllowed("gateway", "method %s not allowed on %s", r.Method, r.URL.Path))
		return
	}
	a.writeError(w, r, merrors.NotFound("gateway", "no route for %s", r.URL.Path))
}

// statusOnly is a ResponseWriter that keeps the status and headers and
// drops the body.
type statusOnly struct {
	header http.Header
	status int
}

func (s *statusOnly) Header() http.Header         { return s.header }
func (s *statusOnly) WriteHeader(status int)      { s.status = status }
func (s *statusOnly) Write(b []byte) (int, error) { return len(b), nil }

type userJSON struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

func fromProto(u *userpb.User) userJSON {
	return userJSON{ID: u.GetId(), Name: u.GetName(), Email: u.GetEmail()}
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request) {
	page, err := queryInt(r, "page")
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	size, err := queryInt(r, "page_size")
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	rsp, err := a.users.List(r.Context(), &userpb.ListRequest{Page: page, PageSize: size})
	if err != nil {
		a.writeError(w, r, callFailed("user", err))
		return
	}
	users := make([]userJSON, 0, len(rsp.Users))
	for _, u := range rsp.Users {
		users = append(users, fromProto(u))
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": users, "total": rsp.Total, "instance": rsp.Instance})
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := idField("id", id); err != nil {
		a.writeError(w, r, err)
		return
	}
	rsp, err := a.users.Get(byUser(r.Context(), id), &userpb.GetRequest{Id: id})
	if err != nil {
		a.writeError(w, r, callFailed("user", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": fromProto(rsp.User), "instance": rsp.Instance})
}

// byUser keys the calls made with ctx by a user id, checked by idField
// (the id limit bounds the key): with --selector hash the calls for one
// user go to one instance of each service, hello's call to user included
// (the key travels in the metadata). No user id, no key.
func byUser(ctx context.Context, userID string) context.Context {
	return wrappers.WithHashKey(ctx, userID)
}

// greetRequest is the body of POST /hello.
type greetRequest struct {
	UserID string `json:"user_id"`
	Name   string `json:"name"`
}

func (a *API) helloQuery(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	a.greet(w, r, greetRequest{UserID: q.Get("user_id"), Name: q.Get("name")})
}

func (a *API) helloBody(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		a.writeError(w, r, bodyReadError(err))
		return
	}
	if err := bodyForm(body); err != nil {
		a.writeError(w, r, err)
		return
	}
	var req greetRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		a.writeError(w, r, badRequest("invalid JSON body: %v", err))
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		a.writeError(w, r, badRequest("invalid JSON body: data after the object"))
		return
	}
	a.greet(w, r, req)
}

// validate checks the form of each field, wherever it came from.
func (req greetRequest) validate() error {
	if err := idField("user_id", req.UserID); err != nil {
		return err
	}
	return textField("name", req.Name)
}

func (a *API) greet(w http.ResponseWriter, r *http.Request, req greetRequest) {
	if err := req.validate(); err != nil {
		a.writeError(w, r, err)
		return
	}
	rsp, err := a.hello.Greet(byUser(r.Context(), req.UserID), &hellopb.GreetRequest{UserId: req.UserID, Name: req.Name})
	if err != nil {
		a.writeError(w, r, callFailed("hello", err))
		return
	}
	writeJSON(w, http.StatusOK, helloAnswer(rsp))
}

// greetJSON is the answer of /hello: the same JSON as a map of its fields
// would give (keys in that order), without the maps' allocations on every
// request.
type greetJSON struct {
	Instances struct {
		Hello string `json:"hello"`
		User  string `json:"user,omitempty"` // a greeting by name asked no user instance
	} `json:"instances"`
	Message string `json:"message"`
}

func helloAnswer(rsp *hellopb.GreetResponse) *greetJSON {
	a := &greetJSON{Message: rsp.Message}
	a.Instances.Hello, a.Instances.User = rsp.Instance, rsp.UserInstance
	return a
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	if err := a.ready(r.Context()); err != nil {
		if !errors.As(err, new(*notReady)) {
			err = &notReady{reason: "not ready", err: err}
		}
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// bodyReadError is a request body that could not be read: too large, or
// cut (by the client, or by the server's read timeout). The read error
// itself names the connection's addresses and stays out of the answer.
func bodyReadError(err error) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return badRequest("invalid JSON body: longer than %d bytes", tooLarge.Limit)
	}
	return badRequest("request body: not received in full")
}

func badRequest(format string, args ...any) error {
	return merrors.BadRequest("gateway", format, args...)
}

// callError is a failed call to a service behind the gateway.
type callError struct {
	service string // the name it is called by: "user", "hello"
	err     error
}

func callFailed(service string, err error) error { return &callError{service: service, err: err} }

func (e *callError) Error() string { return e.service + ": " + e.err.Error() }
func (e *callError) Unwrap() error { return e.err }

// notReady is why the gateway cannot serve calls now, in words fit for
// anyone (reason), and what the registry said, for the log (err).
type notReady struct {
	reason string
	err    error
}

func (e *notReady) Error() string {
	if e.err == nil {
		return e.reason
	}
	return e.reason + ": " + e.err.Error()
}
func (e *notReady) Unwrap() error { return e.err }

// writeError is the one place where errors become HTTP answers: a caller's
// mistake keeps its 4xx code and its message; a service with no instance
// or an open circuit is a 503, a timeout a 504, and any other failure of a
// service behind the gateway a 502. A 5xx answer says only what failed, in
// general terms, and carries the request id of the log line that holds the
// detail: the detail names addresses, ports and registry internals. A
// client over its rate limit gets a 429 with Retry-After.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, reason := http.StatusInternalServerError, "internal error"
	cause, what := err, "a service behind the gateway"
	var call *callError
	if errors.As(err, &call) {
		cause, what = call.err, "the "+call.service+" service"
	}
	var nr *notReady
	var limited *tooManyRequests
	if errors.As(err, &nr) {
		status, reason = http.StatusServiceUnavailable, nr.reason
	} else if errors.As(err, &limited) {
		status, reason = http.StatusTooManyRequests, "too many requests"
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(limited.retryAfter)))
	} else if e, ok := wrappers.Error(cause); ok {
		switch {
		case e.Code == http.StatusRequestTimeout:
			status, reason = http.StatusGatewayTimeout, what+" did not answer in time"
		case e.Code >= 400 && e.Code < 500:
			status, reason = int(e.Code), e.Detail
		case e.Code == http.StatusServiceUnavailable:
			status, reason = http.StatusServiceUnavailable, what+" is unavailable"
		default:
			status, reason = http.StatusBadGateway, what+" failed"
		}
	}
	body := map[string]any{"error": reason, "status": status}
	if status >= 500 {
		id := requestID(r.Context())
		body["request_id"] = id
		a.log.WarnContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	writeJSON(w, status, body)
}

// jsonContentType is every answer's Content-Type, one slice for all: a
// header's value slice is only read by net/http, and Set or Add replace or
// copy it rather than write into it.
var jsonContentType = []string{"application/json"}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	// An error here means the client went away; there is no one to tell.
	_ = json.NewEncoder(w).Encode(v)
}
