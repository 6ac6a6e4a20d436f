package service

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestProbeTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, open, _ := net.SplitHostPort(ln.Addr().String())
	_, closed, _ := net.SplitHostPort(closedAddress(t))

	for _, tc := range []struct {
		listen string
		ok     bool
	}{
		{":" + open, true},
		{"0.0.0.0:" + open, true},
		{":" + closed, false},
		{":0", false},
		{"nonsense", false},
	} {
		if err := ProbeTCP(tc.listen); (err == nil) != tc.ok {
			t.Errorf("ProbeTCP(%q) = %v, want ok=%v", tc.listen, err, tc.ok)
		}
	}
}

func TestProbeHTTP(t *testing.T) {
	for _, tc := range []struct {
		status int
		ok     bool
	}{
		{http.StatusOK, true},
		{http.StatusServiceUnavailable, false},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/readyz" {
				http.NotFound(w, r)
				return
			}
			w.WriteHeader(tc.status)
		}))
		_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
		if err := ProbeHTTP(":"+port, "/readyz"); (err == nil) != tc.ok {
			t.Errorf("ProbeHTTP with status %d = %v, want ok=%v", tc.status, err, tc.ok)
		}
		srv.Close()
	}
}
