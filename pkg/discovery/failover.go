package discovery

import (
	"net/http"
	"sync"
)

// consulFailover sends each request to Consul at one of several agents:
// the one in use, and when it cannot be reached (refused, reset, closed
// connection: no answer at all), the next in the list, in turn, until one
// answers. It then keeps to the one that answered, for every later request:
// the registrations of this service belong to that agent from its next
// re-registration on (re-registration registers again when the agent does
// not know the instance), and its lookups and watches read through the
// same agent.
//
// The go-micro plugin takes several addresses but picks one when its client
// is built and never changes it, and consul/api takes one: the failover is
// here, under both, so that lookups, watches and registration all follow.
//
// An agent that accepts connections and does not answer (paused, or a
// network that drops packets) is not failed over from: the caller's own
// bound (each registration and lookup has one) ends the request, and a
// blocking query of a watch waits, as it does on one agent.
type consulFailover struct {
	addrs []string // host:port of each agent, in the order given
	next  http.RoundTripper

	mu  sync.Mutex
	cur int // index in addrs of the agent in use
}

func newConsulFailover(addrs []string, next http.RoundTripper) http.RoundTripper {
	if len(addrs) < 2 {
		return next
	}
	return &consulFailover{addrs: addrs, next: next}
}

func (f *consulFailover) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	start := f.cur
	f.mu.Unlock()
	var err error
	for i := range f.addrs {
		at := (start + i) % len(f.addrs)
		r := req.Clone(req.Context())
		r.URL.Host, r.Host = f.addrs[at], ""
		if i > 0 && req.Body != nil && req.Body != http.NoBody {
			if req.GetBody == nil {
				return nil, err // cannot send the body again
			}
			if r.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
		var rsp *http.Response
		if rsp, err = f.next.RoundTrip(r); err == nil {
			if at != start {
				f.mu.Lock()
				f.cur = at
				f.mu.Unlock()
			}
			return rsp, nil
		}
		if req.Context().Err() != nil {
			return nil, err // the caller gave up: no other agent either
		}
	}
	return nil, err
}
