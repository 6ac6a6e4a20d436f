package discovery

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"go-micro.dev/v4/registry"
)

// The HTTP check Consul runs against each instance registered with
// HTTPCheck: every 2 s, failing after 1 s without an answer. An instance
// that stops answering is critical within interval + timeout (3 s), and
// callers' watches drop critical instances at once. Consul removes an
// instance critical for a minute, its smallest "deregister critical
// service after".
const (
	consulCheckInterval   = 2 * time.Second
	consulCheckTimeout    = time.Second
	consulDeregisterAfter = time.Minute
)

// HTTPCheck has Consul check the instance being registered with GET
// http://<instance's host>:<port>/health, beside the TTL check that
// re-registration passes: the host is the one callers reach the instance
// at, so the check also covers the path from the network to it. The other
// registries ignore it (etcd has its lease, mDNS and memory no checks).
func HTTPCheck(port int) registry.RegisterOption {
	return func(o *registry.RegisterOptions) {
		if o.Context == nil {
			o.Context = context.Background()
		}
		o.Context = context.WithValue(o.Context, httpCheckKey{}, port)
	}
}

type httpCheckKey struct{}

func httpCheckPort(o registry.RegisterOptions) (int, bool) {
	if o.Context == nil {
		return 0, false
	}
	port, ok := o.Context.Value(httpCheckKey{}).(int)
	return port, ok && port > 0
}

// consulRegistration replaces the Register and Deregister of go-micro's
// Consul plugin (registry/consul v1.2.1) and keeps its lookups and watches,
// which read what this writes: the plugin's tags (metadata, endpoints and
// version, encoded as it does) and the node's id, address and port.
//
// The plugin takes one check per instance: a TTL check, or a TCP or HTTP
// check instead, and with a TTL and a second check every re-registration
// fails ("does not have associated TTL"). Here an instance has, with
// HTTPCheck, the HTTP check Consul runs (an instance that crashes or hangs
// is critical within seconds), and without it a TTL check that each
// re-registration passes.
//
// Not both: a TTL check is timed by the agent's clock, so an agent that
// stalls (paused, a VM frozen) for longer than the TTL finds every TTL
// check expired when it resumes and marks every instance critical until
// their refreshes, queued meanwhile, reach it tens of milliseconds later.
// Measured after a 12 s SIGSTOP of Consul: for about 50 ms the only instance
// it listed as passing was one stopped during the pause (its TTL was the
// last to expire and its deregistration was still queued), and callers
// whose watch delivered that list failed every attempt on it. An HTTP
// check is run by the agent after it resumes, against the instance as it
// is then.
//
// Its client is the one consulConfig builds for the plugin: the same
// address, token and TLS.
type consulRegistration struct {
	registry.Registry // the plugin, for GetService, ListServices, Watch
	client            *api.Client

	mu   sync.Mutex
	sent map[string]string // node id -> what was last registered for it
}

func newConsulRegistration(plugin registry.Registry, c Config) (*consulRegistration, error) {
	cc, err := consulConfig(c)
	if err != nil {
		return nil, err
	}
	// Registration talks to the local agent and answers in milliseconds:
	// unlike the plugin's watches (blocking queries), it can be bounded.
	hc := *cc.HttpClient
	hc.Timeout = c.Timeout
	cc.HttpClient = &hc
	client, err := api.NewClient(cc)
	if err != nil {
		return nil, fmt.Errorf("consul: %w", err)
	}
	return &consulRegistration{Registry: plugin, client: client, sent: map[string]string{}}, nil
}

// ttlCheckID is the plugin's id of an instance's TTL check.
func ttlCheckID(node string) string { return "service:" + node }

func (r *consulRegistration) Register(s *registry.Service, opts ...registry.RegisterOption) error {
	if len(s.Nodes) == 0 {
		return errors.New("register: no node")
	}
	var o registry.RegisterOptions
	for _, opt := range opts {
		opt(&o)
	}
	node := s.Nodes[0]
	// What was registered, in a form that does not depend on map order
	// (the tags do): unchanged, passing the TTL check is the whole refresh.
	port, _ := httpCheckPort(o)
	sent, err := json.Marshal(struct {
		S    *registry.Service
		TTL  time.Duration
		Port int
	}{s, o.TTL, port})
	if err != nil {
		return err
	}
	agent := r.client.Agent()
	r.mu.Lock()
	same := r.sent[node.Id] == string(sent)
	r.mu.Unlock()
	ttlCheck := hasTTLCheck(o)
	if same {
		// Unchanged: the refresh is passing the TTL check, or with none,
		// asking the agent whether it still knows the instance.
		var err error
		if ttlCheck {
			err = agent.UpdateTTL(ttlCheckID(node.Id), "", api.HealthPassing)
		} else {
			_, _, err = agent.Service(node.Id, nil)
		}
		if err == nil {
			return nil
		}
		if !agentAnswered(err) {
			// No answer: the agent may be paused with this request queued.
			// A full registration would be queued too and could be applied
			// after a deregistration sent later, listing an instance that
			// has stopped; the next interval tries again.
			return err
		}
		// The agent does not know the instance (restarted, removed it after
		// a minute critical, or another agent took over): register again.
	}
	// Built only for a full registration: its tags take a compressor.
	reg, err := consulService(s, node, o)
	if err != nil {
		return err
	}
	if err := agent.ServiceRegister(reg); err != nil {
		return err
	}
	r.mu.Lock()
	r.sent[node.Id] = string(sent)
	r.mu.Unlock()
	if ttlCheck {
		return agent.UpdateTTL(ttlCheckID(node.Id), "", api.HealthPassing)
	}
	return nil
}

// agentAnswered reports whether err is the agent's answer (an HTTP status),
// as opposed to no answer at all.
func agentAnswered(err error) bool {
	return strings.Contains(err.Error(), "Unexpected response code")
}

// hasTTLCheck reports whether an instance registered with o has a TTL
// check: only if it has no HTTP check (see consulService).
func hasTTLCheck(o registry.RegisterOptions) bool {
	_, probed := httpCheckPort(o)
	return o.TTL > 0 && !probed
}

func (r *consulRegistration) Deregister(s *registry.Service, _ ...registry.DeregisterOption) error {
	if len(s.Nodes) == 0 {
		return errors.New("deregister: no node")
	}
	for _, n := range s.Nodes {
		r.mu.Lock()
		delete(r.sent, n.Id)
		r.mu.Unlock()
		if err := r.client.Agent().ServiceDeregister(n.Id); err != nil {
			return err
		}
	}
	return nil
}

// consulService is the agent's registration of node of s, with its checks.
func consulService(s *registry.Service, node *registry.Node, o registry.RegisterOptions) (*api.AgentServiceRegistration, error) {
	host, p, err := net.SplitHostPort(node.Address)
	if err != nil {
		return nil, fmt.Errorf("register %s: address: %w", node.Id, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return nil, fmt.Errorf("register %s: port %q: %w", node.Id, p, err)
	}
	reg := &api.AgentServiceRegistration{
		ID: node.Id, Name: s.Name, Address: host, Port: port, Meta: node.Metadata,
		Tags: consulTags(s, node),
	}
	if hasTTLCheck(o) {
		reg.Checks = append(reg.Checks, &api.AgentServiceCheck{
			CheckID: ttlCheckID(node.Id), Name: "re-registration",
			TTL:                            o.TTL.String(),
			DeregisterCriticalServiceAfter: consulDeregisterAfter.String(),
		})
	}
	if hp, ok := httpCheckPort(o); ok {
		reg.Checks = append(reg.Checks, &api.AgentServiceCheck{
			CheckID: "service:" + node.Id + ":health", Name: "GET /health",
			HTTP:     "http://" + net.JoinHostPort(host, strconv.Itoa(hp)) + "/health",
			Interval: consulCheckInterval.String(), Timeout: consulCheckTimeout.String(),
			// The instance registers once it serves: listed at once, rather
			// than critical until the first check, up to an interval later.
			Status:                         api.HealthPassing,
			DeregisterCriticalServiceAfter: consulDeregisterAfter.String(),
		})
	}
	return reg, nil
}

// consulTags encodes what the plugin's lookups decode from the tags: each
// metadata pair ("t-"), each endpoint ("e-") and the version ("v-"), as
// zlib-compressed JSON in hex. One zlib writer, reset for each tag, serves
// them all: each writer allocates a compressor of ~800 KB, and one per tag
// made every registration allocate ~10 MB.
func consulTags(s *registry.Service, node *registry.Node) []string {
	var (
		buf  bytes.Buffer
		zw   = zlib.NewWriter(&buf)
		tags []string
	)
	encode := func(b []byte) string {
		buf.Reset()
		zw.Reset(&buf)
		_, _ = zw.Write(b) // into a bytes.Buffer: cannot fail
		_ = zw.Close()
		return hex.EncodeToString(buf.Bytes())
	}
	keys := make([]string, 0, len(node.Metadata))
	for k := range node.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if b, err := json.Marshal(map[string]string{k: node.Metadata[k]}); err == nil {
			tags = append(tags, "t-"+encode(b))
		}
	}
	for _, e := range s.Endpoints {
		if b, err := json.Marshal(e); err == nil {
			tags = append(tags, "e-"+encode(b))
		}
	}
	return append(tags, "v-"+encode([]byte(s.Version)))
}
