package stack

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/example/micro-starter/internal/poll"
)

// Prometheus is a Prometheus server (Debian's package, installed by make
// tools) on a free loopback port, with its data in a temporary directory.
type Prometheus struct {
	*Proc
	URL string // http://127.0.0.1:port
}

// StartPrometheus runs Prometheus with config (YAML) in dir and returns
// once it is ready.
func StartPrometheus(dir, config string) (*Prometheus, error) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		return nil, fmt.Errorf("%w (make tools installs Debian's prometheus)", err)
	}
	file := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(file, []byte(config), 0o644); err != nil {
		return nil, err
	}
	ports, err := FreePorts(1)
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	p, err := Start(dir, "prometheus", bin, "--config.file="+file, "--web.listen-address="+addr,
		"--storage.tsdb.path="+filepath.Join(dir, "data"))
	if err != nil {
		return nil, err
	}
	pr := &Prometheus{Proc: p, URL: "http://" + addr}
	err = poll.Until(20*time.Second, 50*time.Millisecond, func() error {
		if p.Exited() {
			return poll.Final(fmt.Errorf("prometheus exited at start: %v\n%s", p.Err(), p.Tail(20)))
		}
		code, _, err := get(registryHTTP, pr.URL+"/-/ready")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("GET /-/ready: %d", code)
		}
		return err
	})
	if err != nil {
		p.Stop(stopWithin)
		return nil, err
	}
	return pr, nil
}

// MustStartPrometheus is StartPrometheus for a test: stopped when tb ends.
func MustStartPrometheus(tb testing.TB, config string) *Prometheus {
	tb.Helper()
	p, err := StartPrometheus(tb.TempDir(), config)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.stopForTest(tb) })
	return p
}

// Sample is one series of an instant query's answer: its labels and value.
type Sample struct {
	Metric map[string]string
	Value  [2]any // [time, "value"]
}

// Query asks Prometheus's API an instant query (PromQL).
func (p *Prometheus) Query(q string) ([]Sample, error) {
	var rsp struct {
		Status string
		Error  string
		Data   struct{ Result []Sample }
	}
	if err := GetJSON(registryHTTP, p.URL+"/api/v1/query?query="+url.QueryEscape(q), &rsp); err != nil {
		return nil, err
	}
	if rsp.Status != "success" {
		return nil, errors.New("query " + q + ": " + rsp.Error)
	}
	return rsp.Data.Result, nil
}

// Target is a target Prometheus scrapes now.
type Target struct {
	Labels    map[string]string
	ScrapeURL string
	Health    string // "up", "down" or "unknown" (not scraped yet)
}

// ActiveTargets lists the targets Prometheus's discovery gives it now.
func (p *Prometheus) ActiveTargets() ([]Target, error) {
	var rsp struct {
		Data struct{ ActiveTargets []Target }
	}
	if err := GetJSON(registryHTTP, p.URL+"/api/v1/targets?state=active", &rsp); err != nil {
		return nil, err
	}
	return rsp.Data.ActiveTargets, nil
}
