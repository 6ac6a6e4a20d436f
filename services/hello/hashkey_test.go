package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"

	grpcserver "github.com/go-micro/plugins/v4/server/grpc"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/server"

	"github.com/example/micro-starter/pkg/service"
	"github.com/example/micro-starter/pkg/service/servicetest"
	"github.com/example/micro-starter/pkg/wrappers"
	hellopb "github.com/example/micro-starter/services/hello/proto"
	userpb "github.com/example/micro-starter/services/user/proto"
)

// keyRecordingUsers is a user service that records the hash key each call
// brings over the wire.
type keyRecordingUsers struct {
	mu   sync.Mutex
	keys []string
}

func (u *keyRecordingUsers) Get(ctx context.Context, in *userpb.GetRequest, out *userpb.GetResponse) error {
	key, _ := metadata.Get(ctx, wrappers.HashKeyHeader)
	u.mu.Lock()
	u.keys = append(u.keys, key)
	u.mu.Unlock()
	out.User = &userpb.User{Id: in.Id, Name: "Ada"}
	return nil
}

func (u *keyRecordingUsers) List(context.Context, *userpb.ListRequest, *userpb.ListResponse) error {
	return fmt.Errorf("List not expected")
}

// TestHashKeyReachesUser: the hash key of a call to hello (the gateway's)
// is on hello's call to user, with nothing in hello's code for it: go-micro
// sends the metadata of the call a handler serves on the calls it makes
// with the handler's context. So with --selector hash, hello's calls for
// one user go to one user instance.
func TestHashKeyReachesUser(t *testing.T) {
	cfg := service.DefaultConfig("hello")
	cfg.Registry.Name = "memory"
	cfg.ServerAddress = "127.0.0.1:0"
	cfg.Drain = 0
	cfg.Client.Strategy = "hash"
	svc, err := service.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := hellopb.RegisterHelloServiceHandler(svc.Server(), newHandler(svc.Client(), "hello-1", slog.New(slog.NewTextHandler(io.Discard, nil)))); err != nil {
		t.Fatal(err)
	}
	users := &keyRecordingUsers{}
	userSrv := grpcserver.NewServer(server.Name("user"), server.Address("127.0.0.1:0"),
		server.Registry(svc.Registry()), server.Broker(broker.NewMemoryBroker()))
	if err := userpb.RegisterUserServiceHandler(userSrv, users); err != nil {
		t.Fatal(err)
	}
	if err := userSrv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = userSrv.Stop() })
	servicetest.MustRun(t, svc)

	hello := hellopb.NewHelloService("hello", svc.Client())
	for _, id := range []string{"ada", "alan"} {
		keyed := wrappers.WithHashKey(context.Background(), id)
		if _, err := hello.Greet(keyed, &hellopb.GreetRequest{UserId: id}); err != nil {
			t.Fatalf("Greet(%s): %v", id, err)
		}
	}
	users.mu.Lock()
	got := append([]string(nil), users.keys...)
	users.mu.Unlock()
	for i, id := range []string{"ada", "alan"} {
		want, _ := metadata.Get(wrappers.WithHashKey(context.Background(), id), wrappers.HashKeyHeader)
		if i >= len(got) || got[i] != want {
			t.Fatalf("user got hash keys %q, want %s's %q at %d", got, id, want, i)
		}
	}
}
