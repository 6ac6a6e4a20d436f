// Command gateway is bench/plain's gateway: the starter's GET routes
// (/hello, /users, /users/{id}, /readyz) with the same JSON answers,
// calling hello and user with plain go-micro's client.
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"

	"github.com/urfave/cli/v2"
	"go-micro.dev/v4"
	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"

	"github.com/example/micro-starter/bench/plain"
	hellopb "github.com/example/micro-starter/services/hello/proto"
	userpb "github.com/example/micro-starter/services/user/proto"
)

func main() {
	var httpAddress string
	svc := plain.NewService("gateway", micro.Flags(&cli.StringFlag{
		Name: "http_address", Value: ":8080", Usage: "HTTP listen address", Destination: &httpAddress,
	}))
	svc.Init()
	ln, err := net.Listen("tcp", httpAddress)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
	go func() {
		err := http.Serve(ln, routes(svc.Client(), svc.Options().Registry))
		fmt.Fprintln(os.Stderr, "gateway: http:", err)
		os.Exit(1)
	}()
	if err := svc.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func routes(c client.Client, reg registry.Registry) http.Handler {
	users, hello := userpb.NewUserService("user", c), hellopb.NewHelloService("hello", c)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		rsp, err := hello.Greet(r.Context(), &hellopb.GreetRequest{UserId: q.Get("user_id"), Name: q.Get("name")})
		if err != nil {
			writeError(w, err)
			return
		}
		instances := map[string]string{"hello": rsp.Instance}
		if rsp.UserInstance != "" {
			instances["user"] = rsp.UserInstance
		}
		writeJSON(w, http.StatusOK, map[string]any{"message": rsp.Message, "instances": instances})
	})
	mux.HandleFunc("GET /users", func(w http.ResponseWriter, r *http.Request) {
		rsp, err := users.List(r.Context(), &userpb.ListRequest{})
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"users": rsp.Users, "total": rsp.Total, "instance": rsp.Instance})
	})
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		rsp, err := users.Get(r.Context(), &userpb.GetRequest{Id: r.PathValue("id")})
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"user": rsp.User, "instance": rsp.Instance})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		for _, name := range []string{"user", "hello"} {
			if s, err := reg.GetService(name); err != nil || len(s) == 0 {
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	return mux
}

func writeError(w http.ResponseWriter, err error) {
	e := merrors.Parse(err.Error())
	status := int(e.Code)
	if status < 400 || status > 599 {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, map[string]any{"error": e.Detail, "status": status})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
