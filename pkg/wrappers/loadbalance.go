package wrappers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"

	"github.com/go-micro/plugins/v4/wrapper/select/roundrobin"
	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"
)

var strategies = map[string]client.Wrapper{
	// Rotates through the instances across calls, and within a call, so a
	// retry always goes to the next instance.
	"roundrobin": roundrobin.NewClientWrapper(),
	// Tries the instances in a random order, a new one for each call.
	"random": withStrategy(randomOrder),
}

// LoadBalance picks the instance of each call by strategy ("roundrobin" or
// "random"), and reports a service with no instance as a 503.
func LoadBalance(strategy string) client.Wrapper {
	pick := strategies[strategy]
	return func(next client.Client) client.Client {
		return unavailable{pick(next)}
	}
}

func withStrategy(s selector.Strategy) client.Wrapper {
	return func(next client.Client) client.Client { return strategyClient{Client: next, strategy: s} }
}

type strategyClient struct {
	client.Client
	strategy selector.Strategy
}

func (c strategyClient) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	opts = append(opts, client.WithSelectOption(selector.WithStrategy(c.strategy)))
	return c.Client.Call(ctx, req, rsp, opts...)
}

// randomOrder shuffles the instances once per call and tries them in that
// order, so a retry never goes back to an instance that just failed while
// another is untried. go-micro's selector.Random draws again for every
// attempt, and with two instances, one dead, three attempts all land on the
// dead one one time in eight.
func randomOrder(services []*registry.Service) selector.Next {
	var nodes []*registry.Node
	for _, s := range services {
		nodes = append(nodes, s.Nodes...)
	}
	rand.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
	var next atomic.Int64
	return func() (*registry.Node, error) {
		if len(nodes) == 0 {
			return nil, selector.ErrNoneAvailable
		}
		return nodes[int(next.Add(1)-1)%len(nodes)], nil
	}
}

type unavailable struct{ client.Client }

func (c unavailable) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	err := c.Client.Call(ctx, req, rsp, opts...)
	if noInstance(err) {
		return merrors.New(clientID, fmt.Sprintf("service %s: no instance available", req.Service()), 503)
	}
	return err
}

// noInstance recognises the selector's "not found" and "none available",
// which go-micro's client reports as a 500 with the selector error in the
// text.
func noInstance(err error) bool {
	e, ok := Error(err)
	if !ok || e.Id != clientID || e.Code != 500 {
		return false
	}
	return strings.HasSuffix(e.Detail, selector.ErrNotFound.Error()) ||
		strings.HasSuffix(e.Detail, selector.ErrNoneAvailable.Error())
}
