package main

import (
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// maxClients bounds how many clients the rate limiter tracks at once: about
// 100 bytes each, so a few MB at most however many addresses send requests.
const maxClients = 1 << 16

// maxWait bounds the wait a refused request is told: a Duration cannot
// hold the wait of a very slow rate, and a day is past any client's patience.
const maxWait = 24 * time.Hour

// rateLimiter is a token bucket per client: a client may send burst
// requests at once, then rate per second.
//
// A client is the remote address of the connection, never X-Forwarded-For
// or a similar header: anyone can send any value there, so trusting it
// would let one client take a fresh bucket for every request (no limit at
// all, and a map filled with made-up names) or spend another client's
// budget and lock that client out. Behind a proxy every request comes from
// the proxy's address: limit at the proxy, and raise or disable the limit
// here.
type rateLimiter struct {
	rate  float64 // tokens added per second
	burst float64 // a bucket's size
	max   int     // clients tracked at most
	now   func() time.Time
	log   *slog.Logger

	mu        sync.Mutex
	clients   map[netip.Prefix]*bucket
	lastSweep time.Time
	warned    time.Time // when the log last said the map was full
}

type bucket struct {
	tokens float64
	last   time.Time // when tokens was computed
}

// newRateLimiter returns a limiter of rate requests per second with bursts
// of burst, tracking at most max clients; nil (no limit) if rate is 0.
func newRateLimiter(rate float64, burst, max int, now func() time.Time, log *slog.Logger) *rateLimiter {
	if rate == 0 {
		return nil
	}
	return &rateLimiter{rate: rate, burst: float64(burst), max: max, now: now, log: log,
		clients: make(map[netip.Prefix]*bucket), lastSweep: now()}
}

// refilled reports whether a bucket idle since then is full again by now:
// it is then the same as a new one, and can be forgotten. In float64
// seconds: burst/rate can exceed a Duration's 292 years, and an overflowed
// Duration would make every bucket look refilled, so nobody limited.
func (l *rateLimiter) refilled(since, now time.Time) bool {
	return now.Sub(since).Seconds() >= l.burst/l.rate
}

// allow takes a token from client's bucket. If there is none it returns
// false and how long until there is one.
func (l *rateLimiter) allow(client netip.Prefix) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	// Forgetting idle clients once per refill period costs one pass over
	// at most max entries: a bounded cost however requests arrive.
	if l.refilled(l.lastSweep, now) {
		for k, b := range l.clients {
			if l.refilled(b.last, now) {
				delete(l.clients, k)
			}
		}
		l.lastSweep = now
	}
	b, ok := l.clients[client]
	if !ok {
		if len(l.clients) >= l.max {
			// Full: more than max clients sent requests within one refill
			// period, a distributed flood that no per-client limit stops.
			// The new client is let through untracked (fail open): refusing
			// it instead would make the flood a lock-out of every new real
			// client, while the flood's own addresses keep their budget.
			// The connection bounds and the client's circuit breakers still
			// hold.
			if now.Sub(l.warned) >= time.Minute {
				l.warned = now
				l.log.Warn("rate limiter full: new clients are not limited", "clients", len(l.clients))
			}
			return true, 0
		}
		b = &bucket{tokens: l.burst, last: now}
		l.clients[client] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false, time.Duration(min((1-b.tokens)/l.rate, maxWait.Seconds()) * float64(time.Second))
	}
	b.tokens--
	return true, 0
}

// tracked is how many clients the limiter holds.
func (l *rateLimiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}

// clientOf names the client of r: its IPv4 address, or the /64 network of
// its IPv6 address, since one host usually has a whole /64 and could
// otherwise send each request from a new address.
func clientOf(r *http.Request) netip.Prefix {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		// Not an IP address (net/http always sets one; a test or another
		// transport might not): all such requests share one bucket.
		return netip.Prefix{}
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p
	}
	return netip.PrefixFrom(addr, 32)
}

// tooManyRequests is a request refused by the rate limiter; retryAfter is
// when the client may send the next one.
type tooManyRequests struct{ retryAfter time.Duration }

func (e *tooManyRequests) Error() string { return "too many requests" }

// retryAfterSeconds is Retry-After for a wait of d: whole seconds, at least
// 1, so that a client waiting that long finds a token.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
