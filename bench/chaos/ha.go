package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/internal/stack"
)

// The registry-cluster scenarios (T8, T9) run the shipped build against a
// registry cluster (stack.Cluster: three etcd members, or three Consul
// servers and the client agent the services register through, every
// address in --registry_address), and the same events against one
// registry server ("single"), for comparison. The load goes through the
// client, as in the other scenarios, and through a gateway -> hello -> user
// at the same rate.

// Targets of T8 and T9.
const (
	joinTarget  = 10 * time.Second // a new instance registered and called, after the new leader
	leaveTarget = 2 * time.Second  // a SIGTERMed instance gone from the registry
)

// gatewayHTTP bounds each request; the gateway's own calls time out after 5 s.
var gatewayHTTP = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

// startGatewayLoad sends GET url (the gateway's /hello) rate times a second.
func startGatewayLoad(url string, rate int) *load {
	return startPaced(rate, func() result {
		start := time.Now()
		r := result{at: start}
		rsp, err := gatewayHTTP.Get(url)
		if err != nil {
			r.kind = "http"
		} else {
			var body struct{ Instances map[string]string }
			b, _ := io.ReadAll(rsp.Body)
			rsp.Body.Close()
			if rsp.StatusCode != http.StatusOK {
				r.kind = fmt.Sprintf("http %d", rsp.StatusCode)
			} else if json.Unmarshal(b, &body) == nil {
				r.instance = body.Instances["user"]
			}
		}
		r.latency = time.Since(start)
		return r
	})
}

// startFront starts hello and a gateway (no rate limit: the load comes from
// one address) against the registry and returns the gateway's URL once it
// is ready.
func (c *cluster) startFront() (string, error) {
	for _, svc := range []string{"hello", "gateway"} {
		args := c.serviceArgs()
		var url string
		if svc == "gateway" {
			ports, err := stack.FreePorts(1)
			if err != nil {
				return "", err
			}
			addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
			url = "http://" + addr
			args = append(args, "--http_address", addr, "--http_rate_limit", "0")
		}
		p, err := stack.Start(c.dir, svc, filepath.Join(c.bin, svc), args...)
		if err != nil {
			return "", err
		}
		c.started = append(c.started, p)
		if url != "" {
			err = poll.Until(30*time.Second, pollEvery, func() error {
				if p.Exited() {
					return poll.Final(fmt.Errorf("gateway exited: %v", p.Err()))
				}
				code, err := stack.Get(gatewayHTTP, url+"/readyz", nil)
				if err == nil && code != http.StatusOK {
					err = fmt.Errorf("readyz %d", code)
				}
				return err
			})
			return url + "/hello?user_id=ada", err
		}
	}
	return "", errors.New("no gateway")
}

// listing reads the user instances the registry lists every 50 ms and
// keeps each read that missed an instance whose process was healthy: whose
// own GET /health had answered 200 without a break for longer than the
// registry takes to notice (Consul's check: every 2 s, 1 s timeout). An
// instance answers 503 until its first registration has been answered, and
// Consul may probe it before that (its agent answers late while it syncs
// with a partitioned server): the critical state that follows, for up to
// one check interval, is the instance's own answer, not a loss.
type listing struct {
	c      *cluster
	mu     sync.Mutex
	want   map[string]bool
	health map[string]string        // id -> its /health address, if known
	since  map[string]time.Time     // id -> since when /health answers 200
	lost   map[string]time.Duration // id -> how long it was missing, in reads
	quit   chan struct{}
	done   chan struct{}
}

// noticeWithin is how long Consul's HTTP check of an instance takes to see
// a change: its interval and timeout (pkg/discovery).
const noticeWithin = 3 * time.Second

var healthHTTP = &http.Client{Timeout: time.Second}

func watchListing(c *cluster, ids ...string) *listing {
	w := &listing{c: c, want: map[string]bool{}, health: map[string]string{}, since: map[string]time.Time{}, lost: map[string]time.Duration{},
		quit: make(chan struct{}), done: make(chan struct{})}
	for _, id := range ids {
		w.expect(id)
	}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.quit:
				return
			case <-tick.C:
			}
			var probes sync.WaitGroup
			probes.Go(w.probe)
			ids, err := w.c.api().IDs("user")
			probes.Wait()
			if err != nil {
				continue // nothing answered: that says nothing of the instances
			}
			w.mu.Lock()
			for id := range w.want {
				healthy := w.health[id] == "" || (!w.since[id].IsZero() && time.Since(w.since[id]) > noticeWithin)
				if healthy && !slices.Contains(ids, id) {
					w.lost[id] += 50 * time.Millisecond
				}
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// probe asks each expected instance's /health, as Consul's check does.
func (w *listing) probe() {
	w.mu.Lock()
	addrs := map[string]string{}
	for id := range w.want {
		if a := w.health[id]; a != "" {
			addrs[id] = a
		}
	}
	w.mu.Unlock()
	var wg sync.WaitGroup
	for id, addr := range addrs {
		wg.Go(func() {
			code, err := stack.Get(healthHTTP, "http://"+addr+"/health", nil)
			w.mu.Lock()
			defer w.mu.Unlock()
			switch {
			case err != nil || code != http.StatusOK:
				w.since[id] = time.Time{}
			case w.since[id].IsZero():
				w.since[id] = time.Now()
			}
		})
	}
	wg.Wait()
}

func (w *listing) expect(id string) {
	w.mu.Lock()
	w.want[id] = true
	w.health[id] = w.c.health[id]
	w.mu.Unlock()
}
func (w *listing) forget(id string) { w.mu.Lock(); delete(w.want, id); w.mu.Unlock() }

func (w *listing) stop() map[string]time.Duration {
	close(w.quit)
	<-w.done
	return w.lost
}

// disruption is what T8 and T9 do to the registry: start it, and end it
// (the registry answers fully again). started returns when a leader is
// elected again (cluster) or the registry is back (single).
type disruption struct {
	name  string
	begin func(e env) error
	// leaderBack waits for a registry that can take registrations again.
	leaderBack func(e env) error
	end        func(e env, o *outcome) error
}

var (
	// T8: the leader killed; it is started again once the new instance has
	// been called, then another member is stopped and started again.
	leaderKill = disruption{
		name: "leader kill -9",
		begin: func(e env) error {
			if e.c.rc == nil {
				return e.c.reg.Kill()
			}
			// Waited for: on a loaded machine a member can be between two
			// elections at this moment (seen: "consul-server-3 knows no leader").
			leader, err := e.c.rc.WaitLeader(30 * time.Second)
			if err != nil {
				return err
			}
			e.c.killed = leader
			return e.c.rc.Kill(leader)
		},
		leaderBack: func(e env) error {
			if e.c.rc == nil {
				// One server: nothing takes over. It is started again after
				// the phase, as a supervisor would.
				time.Sleep(e.phase)
				return e.c.reg.Restart()
			}
			_, err := e.c.rc.WaitLeader(60 * time.Second)
			return err
		},
		end: func(e env, o *outcome) error {
			if e.c.rc == nil {
				return nil
			}
			if err := e.c.rc.Restart(e.c.killed); err != nil {
				return err
			}
			f, err := e.c.rc.Follower(e.c.killed)
			if err != nil {
				return err
			}
			e.c.rc.Stop(f)
			o.note("%s stopped", f.Name)
			time.Sleep(e.phase)
			return e.c.rc.Restart(f)
		},
	}
	// T9: the leader paused (partitioned) for e.outage; the others elect a
	// new one meanwhile.
	leaderPause = disruption{
		name: "leader paused",
		begin: func(e env) error {
			if e.c.rc == nil {
				return e.c.reg.Pause()
			}
			// Waited for: on a loaded machine a member can be between two
			// elections at this moment (seen: "consul-server-3 knows no leader").
			leader, err := e.c.rc.WaitLeader(30 * time.Second)
			if err != nil {
				return err
			}
			e.c.killed = leader
			return e.c.rc.Pause(leader)
		},
		leaderBack: func(e env) error {
			if e.c.rc == nil {
				return nil // measured from the resume, in end
			}
			_, err := e.c.rc.WaitLeader(60 * time.Second)
			return err
		},
		end: func(e env, o *outcome) error {
			if rest := e.outage - time.Since(e.c.disrupted); rest > 0 {
				time.Sleep(rest)
			}
			if e.c.rc == nil {
				return e.c.reg.Resume()
			}
			return e.c.rc.Resume(e.c.killed)
		},
	}
)

// registryCluster runs d under load through the client and the gateway:
// a new instance is started as d begins, one of the first two is sent
// SIGTERM once the new one has been called, and the registry's listing is
// read all along.
func registryCluster(d disruption) func(e env, o *outcome) error {
	return func(e env, o *outcome) error {
		front, err := e.c.startFront()
		if err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
		listed := watchListing(e.c, e.c.ids...)
		l := startLoad(e.caller, e.rate, "ada")
		g := startGatewayLoad(front, e.rate)
		stopLoads := func() {
			o.results = append(l.stop(), g.stop()...)
		}
		time.Sleep(e.phase)

		if err := d.begin(e); err != nil {
			stopLoads()
			return err
		}
		e.c.disrupted = time.Now()
		if e.c.killed != nil {
			o.note("%s was %s", d.name, e.c.killed.Name)
		}
		// The new instance registers as soon as it can: the poll in
		// startUser runs meanwhile.
		type started struct {
			id  string
			at  time.Time
			err error
		}
		joined := make(chan started, 1)
		go func() {
			p, id, at, err := e.c.startUser(false)
			if err == nil {
				e.c.users = append(e.c.users, p)
			}
			joined <- started{id, at, err}
		}()
		if err := d.leaderBack(e); err != nil {
			stopLoads()
			return fmt.Errorf("no leader: %w", err)
		}
		back := time.Now()
		if e.c.rc == nil && d.name == leaderPause.name {
			if err := d.end(e, o); err != nil {
				stopLoads()
				return err
			}
			back = time.Now()
		}
		o.note("leader again %.1f s after the %s", back.Sub(e.c.disrupted).Seconds(), d.name)
		j := <-joined
		if j.err != nil {
			// With one registry server a service started while it is away
			// gives up after its --registry_attempts.
			o.note("new instance never registered: %v", j.err)
			o.miss("new instance never registered")
		} else {
			listed.expect(j.id)
		}
		var firstCall time.Time
		poll.Until(joinTarget+30*time.Second, pollEvery, func() error {
			if j.err != nil {
				return nil
			}
			for _, rs := range [][]result{l.since(e.c.disrupted), g.since(e.c.disrupted)} {
				for _, r := range rs {
					if r.instance == j.id && r.kind == "" && (firstCall.IsZero() || r.at.Before(firstCall)) {
						firstCall = r.at.Add(r.latency)
					}
				}
			}
			if firstCall.IsZero() {
				return errors.New("not called yet")
			}
			return nil
		})
		switch {
		case j.err != nil:
		case firstCall.IsZero():
			o.note("new instance never called")
			o.miss("new instance never called")
		default:
			took := firstCall.Sub(back)
			o.note("new instance registered %.1f s and first called %.1f s after the leader was back", j.at.Sub(back).Seconds(), took.Seconds())
			if took > joinTarget {
				o.miss("new instance called %v after the new leader", took.Round(100*time.Millisecond))
			}
		}

		victim := e.c.ids[0]
		listed.forget(victim)
		e.c.users[0].Signal(syscall.SIGTERM)
		sent := time.Now()
		err = poll.Until(leaveTarget+30*time.Second, pollEvery, func() error {
			ids, err := e.c.api().IDs("user")
			if err != nil {
				return err // no answer is not "gone"
			}
			if slices.Contains(ids, victim) {
				return errors.New("still listed")
			}
			return nil
		})
		if err != nil {
			o.note("SIGTERMed instance still listed")
			o.miss("SIGTERMed instance never deregistered")
		} else {
			took := time.Since(sent)
			o.note("SIGTERMed instance gone after %.1f s", took.Seconds())
			if took > leaveTarget {
				o.miss("SIGTERMed instance gone after %v", took.Round(100*time.Millisecond))
			}
		}

		if !(e.c.rc == nil && d.name == leaderPause.name) {
			if err := d.end(e, o); err != nil {
				stopLoads()
				return err
			}
		}
		time.Sleep(e.phase)
		stopLoads()
		lost := listed.stop()
		var missing []string
		for id, d := range lost {
			missing = append(missing, fmt.Sprintf("%s for %v", id[:13], d))
		}
		slices.Sort(missing)
		if len(missing) > 0 {
			o.note("healthy instances missing from the registry: %v", missing)
			o.miss("healthy instance missing from the registry")
		} else {
			o.note("no healthy instance ever missing")
		}
		client, gw := l.res, g.res
		o.note("client %d calls, %d failed; gateway %d, %d failed", len(client), failed(client), len(gw), failed(gw))
		o.missIfFailed(o.results)
		return nil
	}
}
