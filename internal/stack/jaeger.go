package stack

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/example/micro-starter/internal/poll"
)

// Jaeger is Jaeger's all-in-one binary (v2, built by make tools) on free
// loopback ports, keeping traces in memory.
type Jaeger struct {
	*Proc
	OTLP  string // OTLP/HTTP receiver, http://127.0.0.1:port: the services' --otlp_endpoint
	Query string // query API and UI, http://127.0.0.1:port
}

// jaegerConfig is an OpenTelemetry Collector configuration for Jaeger v2:
// the OTLP/HTTP receiver, memory storage and the query service, and
// nothing else listening or sending (its own metrics and traces are off,
// the query's gRPC API on a free port too).
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    traces:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
  jaeger_query:
    enable_tracing: false
    storage:
      traces: memstore
    http:
      endpoint: %s
    grpc:
      endpoint: %s
receivers:
  otlp:
    protocols:
      http:
        endpoint: %s
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`

// StartJaeger runs bin/jaeger (found on PATH) in dir and returns once its
// query API answers and its OTLP port accepts connections.
func StartJaeger(dir string) (*Jaeger, error) {
	bin, err := exec.LookPath("jaeger")
	if err != nil {
		return nil, fmt.Errorf("%w (make tools builds bin/jaeger)", err)
	}
	ports, err := FreePorts(3)
	if err != nil {
		return nil, err
	}
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	file := filepath.Join(dir, "jaeger.yaml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(jaegerConfig, addr(0), addr(1), addr(2))), 0o644); err != nil {
		return nil, err
	}
	p, err := Start(dir, "jaeger", bin, "--config", file)
	if err != nil {
		return nil, err
	}
	j := &Jaeger{Proc: p, Query: "http://" + addr(0), OTLP: "http://" + addr(2)}
	err = poll.Until(30*time.Second, 50*time.Millisecond, func() error {
		if p.Exited() {
			return poll.Final(fmt.Errorf("jaeger exited at start: %v\n%s", p.Err(), p.Tail(20)))
		}
		code, _, err := get(registryHTTP, j.Query+"/api/services")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("GET /api/services: %d", code)
		}
		if err != nil {
			return err
		}
		c, err := net.DialTimeout("tcp", addr(2), time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
	if err != nil {
		p.Stop(stopWithin)
		return nil, err
	}
	return j, nil
}

// MustStartJaeger is StartJaeger for a test: stopped when tb ends.
func MustStartJaeger(tb testing.TB) *Jaeger {
	tb.Helper()
	j, err := StartJaeger(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { j.stopForTest(tb) })
	return j
}

// Trace is a trace as Jaeger's query API (/api/traces) returns it.
type Trace struct {
	TraceID   string `json:"traceID"`
	Spans     []Span `json:"spans"`
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

// Span is one span of a Trace.
type Span struct {
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	StartTime     int64  `json:"startTime"` // microseconds since the epoch
	ProcessID     string `json:"processID"`
	References    []struct {
		RefType string `json:"refType"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
}

// Service is the name of the service that recorded s in t.
func (t Trace) Service(s Span) string { return t.Processes[s.ProcessID].ServiceName }

// Parent is the span s is a child of, or "".
func (s Span) Parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

// Tag is the value of s's tag key, formatted, or "".
func (s Span) Tag(key string) string {
	for _, t := range s.Tags {
		if t.Key == key {
			return fmt.Sprint(t.Value)
		}
	}
	return ""
}

// Traces asks Jaeger for the traces service recorded in the last hour
// (at most 100).
func (j *Jaeger) Traces(service string) ([]Trace, error) {
	var answer struct {
		Data []Trace `json:"data"`
	}
	q := url.Values{"service": {service}, "limit": {"100"}, "lookback": {"1h"}}
	if err := GetJSON(registryHTTP, j.Query+"/api/traces?"+q.Encode(), &answer); err != nil {
		return nil, err
	}
	return answer.Data, nil
}

// Trace asks Jaeger for one trace by id.
func (j *Jaeger) Trace(id string) (Trace, error) {
	var answer struct {
		Data []Trace `json:"data"`
	}
	if err := GetJSON(registryHTTP, j.Query+"/api/traces/"+id, &answer); err != nil {
		return Trace{}, err
	}
	if len(answer.Data) != 1 {
		return Trace{}, errors.New("trace " + id + " not found")
	}
	return answer.Data[0], nil
}
