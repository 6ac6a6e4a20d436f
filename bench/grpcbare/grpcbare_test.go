package grpcbare

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// startChain runs user, hello and gateway in this process on loopback and
// returns the gateway's base URL.
func startChain(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	user, hello, gw := listen(), listen(), listen()
	done := make(chan error, 3)
	for _, h := range []struct {
		role string
		ln   net.Listener
		next string
	}{{"user", user, ""}, {"hello", hello, user.Addr().String()}, {"gateway", gw, hello.Addr().String()}} {
		go func() { done <- Serve(ctx, h.role, h.ln, h.next) }()
	}
	t.Cleanup(func() {
		cancel()
		for range 3 {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	})
	return "http://" + gw.Addr().String()
}

func TestChain(t *testing.T) {
	base := startChain(t)
	for _, tc := range []struct {
		name     string
		query    string
		status   int
		contains string // in the body
	}{
		{"greets a user through hello and user", "?user_id=ada", http.StatusOK, `"message":"Hello, Ada Lovelace!"`},
		{"a user's error passes back as gRPC status", "", http.StatusBadGateway, "InvalidArgument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rsp, err := http.Get(base + "/hello" + tc.query)
			if err != nil {
				t.Fatal(err)
			}
			defer rsp.Body.Close()
			b, _ := io.ReadAll(rsp.Body)
			if rsp.StatusCode != tc.status || !strings.Contains(string(b), tc.contains) {
				t.Fatalf("GET /hello%s: %d %s, want %d with %s", tc.query, rsp.StatusCode, b, tc.status, tc.contains)
			}
			if tc.status != http.StatusOK {
				return
			}
			var body struct{ Instances map[string]string }
			if err := json.Unmarshal(b, &body); err != nil {
				t.Fatal(err)
			}
			if body.Instances["hello"] != "grpcbare-hello" || body.Instances["user"] != "grpcbare-user" {
				t.Fatalf("instances %v, want grpcbare-hello and grpcbare-user", body.Instances)
			}
		})
	}
}

func TestUnknownRole(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := Serve(t.Context(), "cache", ln, "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), `unknown role "cache"`) {
		t.Fatalf("Serve with role cache: %v, want unknown role", err)
	}
}
