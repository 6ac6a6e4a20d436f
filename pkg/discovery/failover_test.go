package discovery

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go-micro.dev/v4/registry"
)

// deadAgent accepts connections and closes each at once, as an agent that
// crashes under its callers, and counts them.
func deadAgent(t *testing.T) (addr string, accepted *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	accepted = new(atomic.Int32)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	return l.Addr().String(), accepted
}

// TestConsulFailsOverBetweenAgents: with several addresses, every call the
// service makes to Consul (lookups, listing, registration with its body)
// goes to the next agent when one cannot be reached, and stays there.
func TestConsulFailsOverBetweenAgents(t *testing.T) {
	var mu sync.Mutex
	var seen []string // method path body of each request to the live agent
	registered := false
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+" "+str(body["Name"]))
		mu.Unlock()
		switch r.URL.Path {
		case "/v1/catalog/services":
			w.Write([]byte(`{"user":[]}`))
		case "/v1/health/service/user":
			w.Write([]byte(`[{"Service":{"ID":"user-1","Service":"user","Address":"127.0.0.1","Port":9090,"Tags":[]},"Checks":[]}]`))
		case "/v1/agent/service/register":
			mu.Lock()
			registered = true
			mu.Unlock()
		case "/v1/agent/check/update/service:user-1":
			mu.Lock()
			known := registered
			mu.Unlock()
			if !known {
				http.Error(w, "unknown check", http.StatusNotFound)
			}
		default:
			w.Write([]byte(`{}`))
		}
	}))
	defer live.Close()
	dead, accepted := deadAgent(t)

	r, err := New(Config{Name: "consul", Addresses: []string{dead, strings.TrimPrefix(live.URL, "http://")}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ListServices(); err != nil {
		t.Fatalf("ListServices: %v", err)
	}
	svcs, err := r.GetService("user")
	if err != nil || countNodes(svcs) != 1 {
		t.Fatalf("GetService: %v, %d nodes, want the live agent's 1", err, countNodes(svcs))
	}
	s := &registry.Service{Name: "user", Nodes: []*registry.Node{{Id: "user-1", Address: "127.0.0.1:9090"}}}
	if err := r.Register(s, registry.RegisterTTL(10*time.Second)); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if err := r.Register(s, registry.RegisterTTL(10*time.Second)); err != nil {
		t.Fatalf("Register again: %v", err)
	}
	mu.Lock()
	got := strings.Join(seen, "\n")
	mu.Unlock()
	if !strings.Contains(got, "PUT /v1/agent/service/register user") {
		t.Errorf("the live agent got no registration with its body; it got:\n%s", got)
	}
	// The plugin's client, then our registration's, each find the dead
	// agent once; after that every request goes to the live one.
	if n := accepted.Load(); n == 0 || n > 2 {
		t.Errorf("the dead agent got %d connections, want 1 or 2 (one per client, then none)", n)
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
