package metrics

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkCounting is what each wrapper adds to a request served, a call,
// an attempt and a gateway request, around layers that do nothing.
func BenchmarkCounting(b *testing.B) {
	m := New()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(http.ResponseWriter, *http.Request) {})
	routed := m.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := mux.Handler(r)
		Route(w, pattern)
	}))
	r, w := httptest.NewRequest("GET", "/hello?user_id=ada", nil), httptest.NewRecorder()
	cases := append(countingCases(m), countingCase{"http", func() { routed.ServeHTTP(w, r) }})
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.f()
			}
		})
	}
}
