package tracing

import (
	"maps"
	"sync"
	"sync/atomic"
)

// spanNames are the names of the spans of one service's endpoint: its
// calls' ("call user.Users.Get"), and its attempts' and handlers'
// ("user.Users.Get").
type spanNames struct{ call, span string }

// maxNames bounds the names kept: endpoints are few (a handler's are those
// its server dispatches, a client's those our code calls), but a bound
// keeps a caller naming endpoints at will from growing the map.
const maxNames = 1024

// names formats each endpoint's span names once, instead of concatenating
// them per span (an allocation each, three per sampled hop). Reads are a
// map lookup with no lock; a new endpoint copies the map.
type names struct {
	m  atomic.Pointer[map[[2]string]spanNames]
	mu sync.Mutex // writers
}

func (n *names) get(service, endpoint string) spanNames {
	key := [2]string{service, endpoint}
	if m := n.m.Load(); m != nil {
		if s, ok := (*m)[key]; ok {
			return s
		}
	}
	s := spanNames{call: "call " + service + "." + endpoint, span: service + "." + endpoint}
	n.mu.Lock()
	defer n.mu.Unlock()
	old := n.m.Load()
	if old != nil && len(*old) >= maxNames {
		return s
	}
	m := map[[2]string]spanNames{key: s}
	if old != nil {
		maps.Copy(m, *old)
	}
	n.m.Store(&m)
	return s
}
