package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// hop is one process of the bare chain: the same three hops as gateway ->
// hello -> user, as plain net/http servers with keep-alive JSON and fixed
// addresses (no registry, no RPC framework). It is the practical ceiling on
// this machine, the baseline every figure is read against.
func hop(role, listen, next string) error {
	c := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512, DisableCompression: true},
	}
	get := func(u string, v any) error {
		rsp, err := c.Get(u)
		if err != nil {
			return err
		}
		defer rsp.Body.Close()
		if rsp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", u, rsp.Status)
		}
		return json.NewDecoder(rsp.Body).Decode(v)
	}
	type user struct{ ID, Name, Email string }
	type userRsp struct {
		User     user   `json:"user"`
		Instance string `json:"instance"`
	}
	type greetRsp struct {
		Message      string `json:"message"`
		Instance     string `json:"instance"`
		UserInstance string `json:"user_instance"`
	}
	fail := func(w http.ResponseWriter, err error) { http.Error(w, err.Error(), http.StatusBadGateway) }
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", statsHandler) // allocations, for bench/load's per-hop table
	switch role {
	case "user":
		mux.HandleFunc("GET /user", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, userRsp{User: user{r.URL.Query().Get("id"), "Ada Lovelace", "ada@example.com"}, Instance: "bare-user"})
		})
	case "hello":
		mux.HandleFunc("GET /greet", func(w http.ResponseWriter, r *http.Request) {
			var u userRsp
			if err := get(next+"/user?id="+url.QueryEscape(r.URL.Query().Get("user_id")), &u); err != nil {
				fail(w, err)
				return
			}
			writeJSON(w, greetRsp{Message: "Hello, " + u.User.Name + "!", Instance: "bare-hello", UserInstance: u.Instance})
		})
	case "gateway":
		mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
			var g greetRsp
			if err := get(next+"/greet?user_id="+url.QueryEscape(r.URL.Query().Get("user_id")), &g); err != nil {
				fail(w, err)
				return
			}
			writeJSON(w, map[string]any{"message": g.Message, "instances": map[string]string{"hello": g.Instance, "user": g.UserInstance}})
		})
		mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {})
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	return http.ListenAndServe(listen, mux)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
