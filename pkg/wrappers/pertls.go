package wrappers

import (
	"context"
	"sync"

	grpcclient "github.com/go-micro/plugins/v4/client/grpc"
	"go-micro.dev/v4/client"

	"github.com/example/micro-starter/pkg/mtls"
)

// perService is the base client under mutual TLS: one go-micro gRPC client
// per callee service, each with a TLS configuration that requires the
// callee's certificate to name that service. So an instance registered
// under a name it has no certificate for fails the handshake (a
// NetworkFault: the call fails over to the next instance, and the failure
// counts against the impostor), and never gets the request.
//
// One client per service, because go-micro's gRPC client takes one TLS
// configuration for every call (AuthTLS) and pools connections by address
// alone: a connection checked for one name would otherwise carry calls to
// another service registered at the same address. The clients share the
// selector (its registry cache and watches) and the call wrappers.
type perService struct {
	client.Client // for everything but Call and Stream (requests, options); never dials
	identity      *mtls.Identity
	opts          []client.Option

	mu      sync.Mutex
	clients map[string]client.Client
}

func newPerService(id *mtls.Identity, opts []client.Option) *perService {
	return &perService{
		Client:   grpcclient.NewClient(opts...),
		identity: id,
		opts:     opts,
		clients:  map[string]client.Client{},
	}
}

// callee returns the client for calls to service, made at its first call.
func (p *perService) callee(service string) client.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.clients[service]
	if !ok {
		c = newRPCClient(p.identity.ClientConfig(service), p.opts...)
		p.clients[service] = c
	}
	return c
}

func (p *perService) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	return p.callee(req.Service()).Call(ctx, req, rsp, opts...)
}

func (p *perService) Stream(ctx context.Context, req client.Request, opts ...client.CallOption) (client.Stream, error) {
	return p.callee(req.Service()).Stream(ctx, req, opts...)
}

// Init applies opts to every client, those made later included.
func (p *perService) Init(opts ...client.Option) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.opts = append(p.opts[:len(p.opts):len(p.opts)], opts...)
	for _, c := range p.clients {
		if err := c.Init(opts...); err != nil {
			return err
		}
	}
	return p.Client.Init(opts...)
}
