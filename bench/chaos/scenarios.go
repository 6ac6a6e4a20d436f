package main

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"time"

	"go-micro.dev/v4/client"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/pkg/wrappers"
)

// outcome is what one scenario measured.
type outcome struct {
	results  []result // the calls that count
	notes    []string // times to recovery and the like, for the table
	failures []string // targets missed
}

func (o *outcome) note(format string, args ...any) {
	o.notes = append(o.notes, fmt.Sprintf(format, args...))
}
func (o *outcome) miss(format string, args ...any) {
	o.failures = append(o.failures, fmt.Sprintf(format, args...))
}

// env is what a scenario runs with.
type env struct {
	c       *cluster
	caller  client.Client // the load's client, of the same build as c's instances
	rate    int
	phase   time.Duration // steady load between two events
	outage  time.Duration
	shipped bool
	ttl     time.Duration // the register TTL of the instances
	every   time.Duration // their register interval
}

// scenario is one row of the table.
type scenario struct {
	id, name, target string
	sick             bool // start the second instance as the sick stand-in
	instances        int
	run              func(e env, o *outcome) error
	// ha runs the scenario against a registry cluster (mode shipped) and
	// against one server (mode single), never plain.
	ha bool
}

var scenarios = []scenario{
	{"T1", "rolling restart", "0 failed", false, 2, rollingRestart, false},
	{"T2", "kill -9", "0 failed; gone within the TTL", false, 2, crash, false},
	{"T3a", "registry paused (SIGSTOP)", "0 failed; re-registered within one interval; stop < 5 s", false, 2, registryOutage(false), false},
	{"T3b", "registry stopped and restarted", "0 failed; re-registered within one interval; stop < 5 s", false, 2, registryOutage(true), false},
	{"T4", "sick instance (500s)", "<= 1 % failed after the first second", true, 2, sickInstance, false},
	{"T5", "breaker", fmt.Sprintf("opens within %d failures, never on 4xx; closes < 6 s after recovery", breakerTarget), true, 1, breaker, false},
	{"T6", "scale out", "first call < 500 ms after registering", false, 2, scaleOut, false},
	{"T7", "hang (SIGSTOP)", "0 failed; dropped within 6 s (Consul) or the TTL (etcd); no call after waits for it", false, 2, hang, false},
	{"T8", "registry leader kill -9, then a member stopped and restarted", "0 failed; new instance called < 10 s after the new leader; SIGTERMed gone < 2 s; no healthy instance missing", false, 2, registryCluster(leaderKill), true},
	{"T9", "registry leader paused (partitioned)", "0 failed; new instance called < 10 s after the new leader; SIGTERMed gone < 2 s; no healthy instance missing", false, 2, registryCluster(leaderPause), true},
}

func rollingRestart(e env, o *outcome) error {
	l := startLoad(e.caller, e.rate, "ada")
	time.Sleep(e.phase)
	for i := range 2 {
		took, clean := e.c.users[i].Stop(30 * time.Second)
		o.note("stop %v%s", took.Round(10*time.Millisecond), map[bool]string{false: " (killed)"}[clean])
		p, _, _, err := e.c.startUser(false)
		if err != nil {
			l.stop()
			return err
		}
		e.c.users[i] = p
		time.Sleep(e.phase)
	}
	o.results = l.stop()
	o.missIfFailed(o.results)
	return nil
}

func crash(e env, o *outcome) error {
	l := startLoad(e.caller, e.rate, "ada")
	time.Sleep(e.phase)
	victim := e.c.ids[0]
	e.c.users[0].Signal(syscall.SIGKILL)
	killed := time.Now()
	err := poll.Until(e.ttl+30*time.Second, pollEvery, func() error {
		if slices.Contains(e.c.instances(), victim) {
			return fmt.Errorf("still listed")
		}
		return nil
	})
	gone := time.Since(killed)
	if err != nil {
		o.note("still listed after %v", gone.Round(time.Second))
		o.miss("not gone within the TTL")
	} else {
		o.note("gone from registry after %.1f s (TTL %v)", gone.Seconds(), e.ttl)
		if gone > e.ttl+time.Second {
			o.miss("gone after %v, TTL %v", gone.Round(100*time.Millisecond), e.ttl)
		}
	}
	time.Sleep(e.phase)
	o.results = l.stop()
	o.missIfFailed(o.results)
	return nil
}

// hangDropBound is how soon a hung instance must leave the registry's
// list: Consul's HTTP check of the shipped services (every 2 s, 1 s
// timeout) marks it critical within 3 s, and 6 s is the target; otherwise
// (etcd's lease, plain go-micro's TTL check) the register TTL.
func hangDropBound(e env) time.Duration {
	if e.shipped && e.c.reg.Name == "consul" {
		return 6 * time.Second
	}
	return e.ttl + time.Second
}

// slowAfterDrop is a call that waited for an instance that never answered:
// the shipped client gives up on an attempt after 1.5 s, so a call that
// tried the hung instance takes at least that.
const slowAfterDrop = time.Second

// hang stops one of the two instances with SIGSTOP (alive, its port
// accepting connections, never answering: a hung process, and the stand-in
// for a network cut) for the rest of the scenario, and resumes it at the
// end. It measures how soon the registry stops listing it and whether any
// call sent after that still waited for it.
func hang(e env, o *outcome) error {
	l := startLoad(e.caller, e.rate, "ada")
	time.Sleep(e.phase)
	victim := e.c.ids[0]
	if err := e.c.users[0].Pause(); err != nil {
		l.stop()
		return err
	}
	paused := time.Now()
	bound := hangDropBound(e)
	err := poll.Until(e.ttl+30*time.Second, pollEvery, func() error {
		if slices.Contains(e.c.instances(), victim) {
			return fmt.Errorf("still listed")
		}
		return nil
	})
	dropped := time.Now()
	if err != nil {
		o.note("still listed after %v", dropped.Sub(paused).Round(time.Second))
		o.miss("never dropped")
	} else {
		o.note("dropped %.1f s after the pause", dropped.Sub(paused).Seconds())
		if dropped.Sub(paused) > bound {
			o.miss("dropped after %v, target %v", dropped.Sub(paused).Round(100*time.Millisecond), bound)
		}
	}
	time.Sleep(e.phase)
	e.c.users[0].Resume()
	o.results = l.stop()
	o.missIfFailed(o.results)
	// Callers learn of the drop from their watch within milliseconds.
	var after []result
	slow := 0
	for _, r := range o.results {
		if r.at.After(dropped.Add(100 * time.Millisecond)) {
			after = append(after, r)
			if r.latency >= slowAfterDrop {
				slow++
			}
		}
	}
	if err == nil {
		o.note("after the drop p99 %v, %d calls >= %v", percentile(after, 99).Round(time.Millisecond), slow, slowAfterDrop)
		if slow > 0 {
			o.miss("%d calls after the drop waited >= %v", slow, slowAfterDrop)
		}
	}
	return nil
}

// registryOutage takes the registry away for e.outage: paused with SIGSTOP,
// or stopped and started again (etcd on the same data directory; Consul in
// dev mode comes back empty). Halfway through, the second instance is told
// to stop.
func registryOutage(restart bool) func(e env, o *outcome) error {
	return func(e env, o *outcome) error {
		l := startLoad(e.caller, e.rate, "ada")
		time.Sleep(e.phase)
		if restart {
			e.c.reg.Stop()
		} else {
			e.c.reg.Pause()
		}
		time.Sleep(e.outage / 2)
		took, clean := e.c.users[1].Stop(20 * time.Second)
		if clean {
			o.note("stop during outage %.1f s", took.Seconds())
		} else {
			o.note("stop during outage: still running after %v, killed", took.Round(time.Second))
		}
		if !clean || took >= 5*time.Second {
			o.miss("stop during the outage took %v", took.Round(100*time.Millisecond))
		}
		time.Sleep(e.outage / 2)
		if restart {
			if err := e.c.reg.Restart(); err != nil {
				l.stop()
				return err
			}
		} else {
			e.c.reg.Resume()
		}
		back := time.Now()
		err := poll.Until(e.every+30*time.Second, pollEvery, func() error {
			if !slices.Contains(e.c.instances(), e.c.ids[0]) {
				return fmt.Errorf("not listed")
			}
			return nil
		})
		again := time.Since(back)
		if err != nil {
			o.note("not registered again %v after return", again.Round(time.Second))
			o.miss("never registered again")
		} else {
			o.note("registered %.1f s after return", again.Seconds())
			if again > e.every {
				o.miss("registered again after %v, interval %v", again.Round(100*time.Millisecond), e.every)
			}
		}
		time.Sleep(e.phase)
		o.results = l.stop()
		o.missIfFailed(o.results)
		return nil
	}
}

func sickInstance(e env, o *outcome) error {
	l := startLoad(e.caller, e.rate, "ada")
	start := time.Now()
	time.Sleep(2 * e.phase)
	all := l.stop()
	for _, r := range all {
		if r.at.Sub(start) >= time.Second {
			o.results = append(o.results, r)
		}
	}
	o.note("first second: %d of %d failed", len(all)-len(o.results)-countOK(all[:len(all)-len(o.results)]), len(all)-len(o.results))
	if f := failed(o.results); len(o.results) == 0 || float64(f) > 0.01*float64(len(o.results)) {
		o.miss("%d of %d failed after the first second", f, len(o.results))
	}
	return nil
}

// breakerTarget bounds the failures before a circuit opens. hystrix-go opens
// it at the first call after it has counted the volume threshold (16) of
// failures; calls sent before that, still in flight, fail too. At 500
// calls/s a failed call takes about 1 ms, so one or two are in flight: 20
// leaves room for four (8 ms of calls), and the note of each run shows how
// many there were.
const breakerTarget = 20

// openedAfter describes the failures before the circuit opened: the
// volume threshold, the calls sent before the volume-th failure had
// returned (in flight), and any sent later (hystrix counting late).
func openedAfter(failures []result, volume int) string {
	if len(failures) <= volume {
		return fmt.Sprintf("opened after %d failures (volume %d)", len(failures), volume)
	}
	last := failures[volume-1]
	returned := last.at.Add(last.latency)
	inFlight := 0
	for _, r := range failures[volume:] {
		if r.at.Before(returned) {
			inFlight++
		}
	}
	return fmt.Sprintf("opened after %d failures (volume %d, %d in flight, %d sent later)", len(failures), volume, inFlight, len(failures)-volume-inFlight)
}

// breaker runs the sick stand-in alone, then replaces it with a healthy
// instance; then it asks for an unknown user (404s) to check that 4xx never
// open a circuit.
func breaker(e env, o *outcome) error {
	l := startLoad(e.caller, e.rate, "ada")
	time.Sleep(e.phase)
	_, healthy, _, err := e.c.startUser(false)
	if err != nil {
		l.stop()
		return err
	}
	e.c.users[0].Stop(10 * time.Second) // the sick one
	recovered := time.Now()
	poll.Until(e.phase*2, pollEvery, func() error {
		for _, r := range l.since(recovered) {
			if r.instance == healthy && r.kind == "" {
				return nil
			}
		}
		return fmt.Errorf("no success yet")
	})
	time.Sleep(e.phase)
	o.results = l.stop()

	var before, open []result
	opened := false
	for _, r := range o.results {
		if r.kind == "circuit open" {
			opened = true
			if r.at.Before(recovered) {
				open = append(open, r)
			}
		} else if !opened && r.kind != "" {
			before = append(before, r)
		}
	}
	if opened {
		o.note("%s", openedAfter(before, wrappers.DefaultBreakerConfig().VolumeThreshold))
		if len(before) > breakerTarget {
			o.miss("opened after %d failures", len(before))
		}
		o.note("rejects in %v (p50)", percentile(open, 50))
	} else {
		o.note("never opened")
		o.miss("never opened")
	}
	var firstOK time.Time
	for _, r := range o.results {
		if r.at.After(recovered) && r.kind == "" {
			firstOK = r.at
			break
		}
	}
	if firstOK.IsZero() {
		o.miss("no call succeeded after recovery")
	} else {
		o.note("first success %.1f s after recovery", firstOK.Sub(recovered).Seconds())
		if firstOK.Sub(recovered) > 6*time.Second {
			o.miss("closed after %v", firstOK.Sub(recovered).Round(100*time.Millisecond))
		}
	}
	// 4xx: ask for a user nobody has, for longer than the breaker's window.
	l4 := startLoad(e.caller, e.rate, "nobody")
	time.Sleep(e.phase)
	opened4 := 0
	for _, r := range l4.stop() {
		if r.kind == "circuit open" {
			opened4++
		}
	}
	o.note("404s: %d rejected by an open circuit", opened4)
	if opened4 > 0 {
		o.miss("circuit opened on 404s")
	}
	return nil
}

func scaleOut(e env, o *outcome) error {
	l := startLoad(e.caller, e.rate, "ada")
	time.Sleep(e.phase)
	p, id, registered, err := e.c.startUser(false)
	if err != nil {
		l.stop()
		return err
	}
	e.c.users = append(e.c.users, p)
	poll.Until(e.phase*2, pollEvery, func() error {
		for _, r := range l.since(registered.Add(-time.Second)) {
			if r.instance == id {
				return nil
			}
		}
		return fmt.Errorf("not called yet")
	})
	time.Sleep(e.phase)
	o.results = l.stop()
	for _, r := range o.results {
		if r.instance == id {
			d := r.at.Add(r.latency).Sub(registered)
			o.note("first call %d ms after registering", d.Milliseconds())
			return nil
		}
	}
	o.note("never called")
	o.miss("new instance never called")
	return nil
}

func (o *outcome) missIfFailed(rs []result) {
	if f := failed(rs); f > 0 {
		o.miss("%d failed", f)
	}
}

func failed(rs []result) int { return len(rs) - countOK(rs) }

func countOK(rs []result) int {
	n := 0
	for _, r := range rs {
		if r.kind == "" {
			n++
		}
	}
	return n
}

// kinds summarises the failed calls by kind: "connection 12, timeout 3".
func kinds(rs []result) string {
	m := map[string]int{}
	for _, r := range rs {
		if r.kind != "" {
			m[r.kind]++
		}
	}
	var parts []string
	for k, n := range m {
		parts = append(parts, fmt.Sprintf("%s %d", k, n))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

func percentile(rs []result, p int) time.Duration {
	if len(rs) == 0 {
		return 0
	}
	ls := make([]time.Duration, len(rs))
	for i, r := range rs {
		ls[i] = r.latency
	}
	slices.Sort(ls)
	return ls[min(len(ls)-1, len(ls)*p/100)]
}
