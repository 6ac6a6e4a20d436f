package metrics

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
)

// BenchmarkCounting is what each wrapper adds to a request served, a call,
// an attempt and a gateway request, around layers that do nothing.
func BenchmarkCounting(b *testing.B) {
	m := New()
	served := m.HandlerWrapper()(func(context.Context, server.Request, interface{}) error { return nil })
	called := m.ClientWrapper()(stubClient{})
	tried := m.CallWrapper()(func(context.Context, *registry.Node, client.Request, interface{}, client.CallOptions) error {
		return nil
	})
	var sreq server.Request = request{endpoint: "Hello.Greet"}
	var creq client.Request = call{service: "user", endpoint: "UserService.Get"}
	node := &registry.Node{Id: "u1"}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(http.ResponseWriter, *http.Request) {})
	routed := m.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := mux.Handler(r)
		Route(w, pattern)
	}))
	r, w := httptest.NewRequest("GET", "/hello?user_id=ada", nil), httptest.NewRecorder()
	ctx := context.Background()
	for _, c := range []struct {
		name string
		f    func()
	}{
		{"served", func() { _ = served(ctx, sreq, nil) }},
		{"call", func() { _ = called.Call(ctx, creq, nil) }},
		{"attempt", func() { _ = tried(ctx, node, creq, nil, client.CallOptions{}) }},
		{"http", func() { routed.ServeHTTP(w, r) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.f()
			}
		})
	}
}
