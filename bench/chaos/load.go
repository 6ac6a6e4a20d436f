package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go-micro.dev/v4/client"

	"github.com/example/micro-starter/bench/plain"
	"github.com/example/micro-starter/pkg/service"
	"github.com/example/micro-starter/pkg/wrappers"
	userpb "github.com/example/micro-starter/services/user/proto"
)

// result is one call.
type result struct {
	at       time.Time
	latency  time.Duration
	kind     string // "" for success
	instance string
}

// load calls user.UserService.Get at a fixed rate through the client a
// service would use (the starter's, or bench/plain's).
type load struct {
	mu     sync.Mutex
	res    []result
	quit   chan struct{}
	wg     sync.WaitGroup
	ticker sync.WaitGroup
}

// newCaller is the client the load goes through: the starter's, or plain
// go-micro's, as the instances of c run.
func newCaller(c *cluster) (client.Client, error) {
	if c.plain {
		return plain.NewClient(c.reg.Name, c.reg.Addr)
	}
	cfg := service.DefaultConfig("chaos-load")
	cfg.Registry.Name, cfg.Registry.Addresses = c.api().Name, c.addrs()
	if c.cacheTTL > 0 {
		cfg.Client.CacheTTL = c.cacheTTL
	}
	svc, err := service.New(cfg, quiet)
	if err != nil {
		return nil, err
	}
	return svc.Client(), nil
}

// startLoad calls user's Get for id through cl, rate times a second.
func startLoad(cl client.Client, rate int, id string) *load {
	users := userpb.NewUserService("user", cl)
	return startPaced(rate, func() result {
		start := time.Now()
		rsp, err := users.Get(context.Background(), &userpb.GetRequest{Id: id})
		r := result{at: start, latency: time.Since(start), kind: kind(err)}
		if rsp != nil {
			r.instance = rsp.Instance
		}
		return r
	})
}

// startPaced runs call rate times a second, each in a goroutine of its own
// (a slow call does not delay the next), and keeps every result.
func startPaced(rate int, call func() result) *load {
	l := &load{quit: make(chan struct{})}
	l.ticker.Add(1)
	go l.run(rate, call)
	return l
}

func (l *load) run(rate int, call func() result) {
	defer l.ticker.Done()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for {
		select {
		case <-l.quit:
			return
		case <-tick.C:
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			r := call()
			l.mu.Lock()
			l.res = append(l.res, r)
			l.mu.Unlock()
		}()
	}
}

// stop ends the load and returns every call, in the order they were sent.
func (l *load) stop() []result {
	close(l.quit)
	l.ticker.Wait()
	l.wg.Wait()
	slices.SortFunc(l.res, func(a, b result) int { return a.at.Compare(b.at) })
	return l.res
}

// since returns the calls sent at or after t.
func (l *load) since(t time.Time) []result {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []result
	for _, r := range l.res {
		if !r.at.Before(t) {
			out = append(out, r)
		}
	}
	return out
}

// kind names the error of a failed call for the table.
func kind(err error) string {
	if err == nil {
		return ""
	}
	e, ok := wrappers.Error(err)
	if !ok {
		return "other"
	}
	switch {
	case e.Code == 404 || e.Code == 400:
		return fmt.Sprintf("%d", e.Code)
	case strings.Contains(e.Detail, "circuit open"):
		return "circuit open"
	case strings.Contains(e.Detail, "too many calls in flight"):
		return "breaker full"
	case e.Id == "go.micro.client" && (e.Code == 408 || strings.Contains(e.Detail, "deadline")):
		return "timeout"
	case e.Id == "go.micro.client" && (strings.Contains(e.Detail, "no instance") || strings.Contains(e.Detail, "not found") || strings.Contains(e.Detail, "none available")):
		return "no instance"
	case e.Id == "go.micro.client":
		return "connection"
	default:
		return fmt.Sprintf("service %d", e.Code)
	}
}
