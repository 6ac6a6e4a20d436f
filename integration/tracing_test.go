package integration

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/internal/stack"
)

// TestTracesInJaeger: with --otlp_endpoint every service sends its spans
// to a real Jaeger, and one GET /hello?user_id= is one trace there with
// spans of gateway, hello and user, each handler the child of the attempt
// that reached it. A call that fails over from a dead instance still listed
// in the registry shows as two attempt spans under one call span: the
// first to the dead instance, failed, the second answered.
func TestTracesInJaeger(t *testing.T) {
	forEachRegistry(t, func(t *testing.T, reg *stack.Registry) {
		j := stack.MustStartJaeger(t)
		s := mustStartSystem(t, reg, 2, "--otlp_endpoint", j.OTLP, "--trace_sample_ratio", "1")

		resp, err := httpClient.Get(s.url + "/hello?user_id=ada")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /hello: %d", resp.StatusCode)
		}
		id := resp.Header.Get("X-Request-Id")
		// The SDK sends spans in batches every 5 s.
		var tr stack.Trace
		poll.Eventually(t, 30*time.Second, func() error {
			var err error
			if tr, err = traceOf(j, id); err != nil {
				return err
			}
			for _, service := range []string{"gateway", "hello", "user"} {
				if len(spansOf(tr, service, "server")) == 0 {
					return fmt.Errorf("trace %s: no server span of %s yet", tr.TraceID, service)
				}
			}
			return nil
		})
		spans := map[string]stack.Span{}
		for _, sp := range tr.Spans {
			spans[sp.SpanID] = sp
		}
		for _, h := range []struct{ service, operation, caller string }{
			{"hello", "hello.HelloService.Greet", "gateway"},
			{"user", "user.UserService.Get", "hello"},
		} {
			handlers := spansOf(tr, h.service, "server")
			if len(handlers) != 1 || handlers[0].OperationName != h.operation {
				t.Fatalf("%s's server spans: %v, want one %s", h.service, handlers, h.operation)
			}
			attempt, ok := spans[handlers[0].Parent()]
			if !ok || tr.Service(attempt) != h.caller || attempt.Tag("span.kind") != "client" || attempt.Tag("micro.node.id") == "" {
				t.Errorf("%s's handler span's parent %+v: want an attempt span of %s naming the instance", h.service, attempt, h.caller)
			}
		}

		// One user instance dies, still listed: calls to it fail over.
		dead := s.users[0]
		dead.MustSignal(t, syscall.SIGKILL)
		for range 6 {
			if code := get(t, s.url+"/hello?user_id=alan", nil); code != http.StatusOK {
				t.Errorf("GET /hello after a user instance died: %d", code)
			}
		}
		poll.Eventually(t, 30*time.Second, func() error {
			traces, err := j.Traces("hello")
			if err != nil {
				return err
			}
			for _, tr := range traces {
				for _, call := range tr.Spans {
					if call.OperationName != "call user.UserService.Get" {
						continue
					}
					var attempts []stack.Span
					for _, sp := range tr.Spans {
						if sp.Parent() == call.SpanID && sp.Tag("span.kind") == "client" {
							attempts = append(attempts, sp)
						}
					}
					if len(attempts) < 2 {
						continue
					}
					slices.SortFunc(attempts, func(a, b stack.Span) int { return int(a.StartTime - b.StartTime) })
					first, second := attempts[0], attempts[1]
					if len(attempts) != 2 || first.Tag("micro.node.id") != dead.ID || first.Tag("otel.status_code") != "ERROR" ||
						second.Tag("micro.node.id") == dead.ID || second.Tag("otel.status_code") == "ERROR" {
						return poll.Final(fmt.Errorf("trace %s: attempts %+v: want the dead %s failed, then another answered", tr.TraceID, attempts, dead.ID))
					}
					return nil
				}
			}
			return fmt.Errorf("no trace of hello with two attempts of one call to user yet (%d traces)", len(traces))
		})
	})
}

// TestSampledTracesWhole: at a sample ratio below 1 the gateway draws
// which requests are traced, and each trace in Jaeger is whole: hello and
// user record spans only within a trace the gateway started (a call not
// sampled carries no sampled traceparent, and its callee does not draw again), and
// every trace the gateway started has their handlers' spans.
func TestSampledTracesWhole(t *testing.T) {
	forEachRegistry(t, func(t *testing.T, reg *stack.Registry) {
		j := stack.MustStartJaeger(t)
		s := mustStartSystem(t, reg, 1, "--otlp_endpoint", j.OTLP, "--trace_sample_ratio", "0.5")
		const requests = 40
		for range requests {
			if code := get(t, s.url+"/hello?user_id=ada", nil); code != http.StatusOK {
				t.Fatalf("GET /hello: %d", code)
			}
		}
		// Each instance sends the spans it holds as it stops.
		procs := append([]*stack.Node{s.gateway, s.hello}, s.users...)
		for _, n := range procs {
			n.MustSignal(t, syscall.SIGTERM)
		}
		for _, n := range procs {
			if err := n.Wait(20 * time.Second); err != nil {
				t.Fatal(err)
			}
		}
		var roots map[string]bool // the gateway's traces
		poll.Eventually(t, 30*time.Second, func() error {
			traces, err := j.Traces("gateway")
			if err != nil {
				return err
			}
			roots = map[string]bool{}
			for _, tr := range traces {
				roots[tr.TraceID] = true
				if root := spansOf(tr, "gateway", "server"); len(root) != 1 || root[0].OperationName != "GET /hello" {
					continue // a /readyz of mustStartSystem's
				}
				for _, service := range []string{"hello", "user"} {
					if len(spansOf(tr, service, "server")) != 1 {
						return fmt.Errorf("trace %s: %d server spans of %s, want 1", tr.TraceID, len(spansOf(tr, service, "server")), service)
					}
				}
			}
			if len(roots) == 0 {
				return errors.New("no trace of the gateway yet")
			}
			return nil
		})
		if len(roots) >= requests {
			t.Errorf("%d traces of the gateway for %d requests at ratio 0.5 (and a few /readyz)", len(roots), requests)
		}
		for _, service := range []string{"hello", "user"} {
			traces, err := j.Traces(service)
			if err != nil {
				t.Fatal(err)
			}
			for _, tr := range traces {
				if !roots[tr.TraceID] {
					t.Errorf("%s recorded trace %s, which the gateway did not start: %d spans", service, tr.TraceID, len(tr.Spans))
				}
			}
		}
	})
}

// traceOf finds the trace of the gateway's request whose X-Request-Id was
// id.
func traceOf(j *stack.Jaeger, id string) (stack.Trace, error) {
	traces, err := j.Traces("gateway")
	if err != nil {
		return stack.Trace{}, err
	}
	for _, tr := range traces {
		for _, sp := range tr.Spans {
			if sp.Tag("request_id") == id {
				return j.Trace(tr.TraceID)
			}
		}
	}
	return stack.Trace{}, fmt.Errorf("no trace of request %s in Jaeger yet (%d traces)", id, len(traces))
}

// spansOf are the spans of kind ("server", "client" or "internal") that
// service recorded in tr.
func spansOf(tr stack.Trace, service, kind string) []stack.Span {
	var out []stack.Span
	for _, sp := range tr.Spans {
		if tr.Service(sp) == service && sp.Tag("span.kind") == kind {
			out = append(out, sp)
		}
	}
	return out
}
