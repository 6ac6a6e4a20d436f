package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	merrors "go-micro.dev/v4/errors"

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
	log   *slog.Logger
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
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Matching twice (well under a microsecond) keeps ServeMux in charge
		// of path values, which only its ServeHTTP sets.
		if h, pattern := mux.Handler(r); pattern == "" {
			a.noRoute(w, r, h)
			return
		}
		mux.ServeHTTP(w, r)
	})
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
		a.writeError(w, r, err)
		return
	}
	users := make([]userJSON, 0, len(rsp.Users))
	for _, u := range rsp.Users {
		users = append(users, fromProto(u))
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": users, "total": rsp.Total, "instance": rsp.Instance})
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request) {
	rsp, err := a.users.Get(r.Context(), &userpb.GetRequest{Id: r.PathValue("id")})
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": fromProto(rsp.User), "instance": rsp.Instance})
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
	var req greetRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
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

func (a *API) greet(w http.ResponseWriter, r *http.Request, req greetRequest) {
	rsp, err := a.hello.Greet(r.Context(), &hellopb.GreetRequest{UserId: req.UserID, Name: req.Name})
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	instances := map[string]string{"hello": rsp.Instance}
	if rsp.UserInstance != "" {
		instances["user"] = rsp.UserInstance
	}
	writeJSON(w, http.StatusOK, map[string]any{"message": rsp.Message, "instances": instances})
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	if err := a.ready(r.Context()); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func queryInt(r *http.Request, name string) (int32, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0, badRequest("%s: %q is not a whole number", name, v)
	}
	return int32(n), nil
}

func badRequest(format string, args ...any) error {
	return merrors.BadRequest("gateway", format, args...)
}

// writeError is the one place where go-micro errors become HTTP statuses:
// a caller's mistake keeps its 4xx code, a service with no instance or an
// open circuit is a 503, a timeout a 504, and any other failure of a
// service behind the gateway a 502.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, reason := http.StatusInternalServerError, "internal error"
	if e, ok := wrappers.Error(err); ok {
		reason = e.Detail
		switch {
		case e.Code == http.StatusRequestTimeout:
			status = http.StatusGatewayTimeout
		case e.Code >= 400 && e.Code < 500:
			status = int(e.Code)
		case e.Code == http.StatusServiceUnavailable:
			status = http.StatusServiceUnavailable
		default:
			status = http.StatusBadGateway
		}
	}
	if status >= 500 {
		a.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	writeJSON(w, status, map[string]any{"error": reason, "status": status})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// An error here means the client went away; there is no one to tell.
	_ = json.NewEncoder(w).Encode(v)
}
