package discovery

import (
	"bytes"
	"compress/zlib"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go-micro.dev/v4/registry"
)

// tagged is an instance with as many metadata pairs and endpoints as a
// service of the starter registers (go-micro's server adds five pairs).
func tagged() *registry.Service {
	md := map[string]string{}
	for _, k := range []string{"broker", "protocol", "registry", "server", "transport", "http_address", "instance", "zone"} {
		md[k] = k + "-value"
	}
	s := &registry.Service{Name: "user", Version: "latest", Nodes: []*registry.Node{{Id: "user-1", Address: "127.0.0.1:4000", Metadata: md}}}
	for _, e := range []string{"User.Get", "User.List", "User.Find"} {
		s.Endpoints = append(s.Endpoints, &registry.Endpoint{Name: e, Metadata: map[string]string{"stream": "false"}})
	}
	return s
}

// allocatedBytes is what f allocates, per call, over n calls.
func allocatedBytes(n int, f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(n)
}

// TestConsulTagsShareOneCompressor: the tags of one registration are
// compressed with one zlib writer, not one each. A writer's compressor is
// ~800 KB; with one per tag (12 here) every registration allocated ~10 MB,
// which set an idle instance's heap goal and RSS (seen: three collections
// within 35 ms at each registration; heap profile: flate.NewWriter 54 % of
// the heap in use).
func TestConsulTagsShareOneCompressor(t *testing.T) {
	s := tagged()
	got := allocatedBytes(5, func() { consulTags(s, s.Nodes[0]) })
	t.Logf("%d KiB per registration", got>>10)
	if got > 1<<20 {
		t.Errorf("consulTags allocates %d KiB per registration, want <= 1024 (one compressor)", got>>10)
	}
}

// TestConsulTagsDecode: each tag is the plugin's encoding, zlib-compressed
// JSON (or the version) in hex, whatever writer compressed it.
func TestConsulTagsDecode(t *testing.T) {
	s := tagged()
	tags := consulTags(s, s.Nodes[0])
	if want := len(s.Nodes[0].Metadata) + len(s.Endpoints) + 1; len(tags) != want {
		t.Fatalf("%d tags, want %d", len(tags), want)
	}
	var endpoints, version int
	for _, tag := range tags {
		b, err := hex.DecodeString(tag[2:])
		if err != nil {
			t.Fatalf("tag %q: %v", tag, err)
		}
		zr, err := zlib.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("tag %q: %v", tag, err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("tag %q: %v", tag, err)
		}
		switch tag[:2] {
		case "e-":
			if !strings.Contains(string(plain), `"User.`) {
				t.Errorf("endpoint tag decodes to %s", plain)
			}
			endpoints++
		case "v-":
			if string(plain) != s.Version {
				t.Errorf("version tag decodes to %q", plain)
			}
			version++
		}
	}
	if endpoints != len(s.Endpoints) || version != 1 {
		t.Errorf("%d endpoint tags and %d version tags", endpoints, version)
	}
}

// TestConsulRefreshBuildsNoTags: re-registering an unchanged instance (every
// RegisterInterval) passes its TTL check and builds nothing else: the tags
// and their compression are for a full registration only.
func TestConsulRefreshBuildsNoTags(t *testing.T) {
	var registrations, updates atomic.Int32
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/v1/agent/service/register"):
			registrations.Add(1)
		case strings.HasPrefix(r.URL.Path, "/v1/agent/check/update/"):
			updates.Add(1)
		default:
			http.NotFound(w, r)
		}
	}))
	defer agent.Close()
	reg, err := newConsulRegistration(nil, Config{Name: "consul", Addresses: []string{strings.TrimPrefix(agent.URL, "http://")}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := tagged()
	if err := reg.Register(s, registry.RegisterTTL(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	got := allocatedBytes(5, func() {
		if err := reg.Register(s, registry.RegisterTTL(10*time.Second)); err != nil {
			t.Fatal(err)
		}
	})
	if registrations.Load() != 1 || updates.Load() != 6 {
		t.Fatalf("%d registrations and %d TTL updates, want 1 and 6", registrations.Load(), updates.Load())
	}
	t.Logf("%d KiB per refresh", got>>10)
	if got > 256<<10 {
		t.Errorf("a refresh allocates %d KiB, want <= 256 (no tags built)", got>>10)
	}
}

// TestConsulLookupDecodesTagsWithOneReader: the plugin's lookup (and its
// watch, which decodes the same way) reads every tag of an answer with one
// zlib reader (third_party/go-micro-plugins/registry/consul, encoding.go).
// Upstream made one per tag, each with a 32 KiB window: ~1 MB per lookup of
// two instances, at every lookup and watch event of every caller.
func TestConsulLookupDecodesTagsWithOneReader(t *testing.T) {
	s := tagged()
	entry := func(id string) map[string]any {
		return map[string]any{
			"Node":    map[string]any{"Node": "n", "Address": "127.0.0.1"},
			"Service": map[string]any{"ID": id, "Service": s.Name, "Address": "127.0.0.1", "Port": 4000, "Tags": consulTags(s, s.Nodes[0])},
			"Checks":  []any{map[string]any{"Status": "passing"}},
		}
	}
	answer, err := json.Marshal([]any{entry("user-1"), entry("user-2")})
	if err != nil {
		t.Fatal(err)
	}
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/health/service/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	}))
	defer agent.Close()
	reg, err := New(Config{Name: "consul", Addresses: []string{strings.TrimPrefix(agent.URL, "http://")}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var got []*registry.Service
	per := allocatedBytes(5, func() {
		if got, err = reg.GetService(s.Name); err != nil {
			t.Fatal(err)
		}
	})
	if len(got) != 1 || len(got[0].Nodes) != 2 || got[0].Version != s.Version || len(got[0].Endpoints) != len(s.Endpoints) {
		t.Fatalf("lookup: %+v", got)
	}
	if md := got[0].Nodes[1].Metadata; len(md) != len(s.Nodes[0].Metadata) || md["zone"] != "zone-value" {
		t.Errorf("metadata %v", md)
	}
	t.Logf("%d KiB per lookup", per>>10)
	if per > 256<<10 {
		t.Errorf("a lookup allocates %d KiB, want <= 256 (one zlib reader)", per>>10)
	}
}
